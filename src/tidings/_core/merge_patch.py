"""JSON Merge Patch (RFC 7386): how ``tidings dlq replay --patch`` fixes a dead letter's data.

A patch is a JSON document shaped like the data: an object's members replace the target's
members of the same name, recursively; ``null`` removes a member; anything that is not an
object (an array, a string, a number) replaces the target whole.
"""

from __future__ import annotations

from typing import Any

__all__ = ["merge_patch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with the merge patch `patch` applied (RFC 7386, section 2); neither is
    changed: the objects on the patched path are copies.

    ```python
    merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}})
    # {"a": "z", "c": {"d": "e"}}
    ```
    """
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result
