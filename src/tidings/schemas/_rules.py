"""Compatibility rules between two JSON Schemas of one message, Avro-style.

BACKWARD: a reader of the new schema reads data written with the old one. FORWARD: a reader
of the old schema reads data written with the new one. FULL: both.

- a field added with a default: compatible both ways;
- a field added without a default (required): breaks BACKWARD (old data lacks it);
- a field removed that had no default: breaks FORWARD (old readers need it);
- a field that lost its default: breaks BACKWARD;
- a type change: breaks the way(s) whose reader cannot take the writer's values (``str``
  to ``int`` breaks both; ``int`` to ``int | None`` breaks FORWARD; ``int`` to ``float``
  breaks FORWARD, as Avro's promotions);
- an enum widened (values added) breaks FORWARD, narrowed (values removed) breaks BACKWARD;
- nested models (``$ref`` into ``$defs``), lists and dicts are compared inside, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BACKWARD", "FORWARD", "Change", "compare_schemas"]

BACKWARD = "BACKWARD"
FORWARD = "FORWARD"

Schema = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """One difference between two schemas that breaks compatibility one way or both.

    Attributes:
        path: the field, dotted into nested models (``address.zip``; ``[]`` is the items of
            a list, ``{}`` the values of a dict); empty for the message itself.
        rule: what changed (``added a required field``).
        breaks: ``BACKWARD``, ``FORWARD`` or both.
    """

    path: str
    rule: str
    breaks: tuple[str, ...]

    def __str__(self) -> str:
        where = f"field {self.path!r}" if self.path else "the message"
        return f"{where}: {self.rule} breaks {' and '.join(self.breaks)}"


def compare_schemas(old: Schema, new: Schema) -> list[Change]:
    """The changes from `old` to `new` (JSON Schemas with their ``$defs``) that break
    BACKWARD or FORWARD compatibility, in field order."""
    found: list[Change] = []
    _Walk(old, new, found).node(old, new, "", frozenset())
    return found


class _Walk:
    def __init__(self, old_root: Schema, new_root: Schema, found: list[Change]) -> None:
        self.roots = (old_root, new_root)
        self.found = found

    def add(self, path: str, rule: str, *breaks: str) -> None:
        self.found.append(Change(path, rule, tuple(breaks)))

    def node(self, old: Schema, new: Schema, path: str, seen: frozenset[Any]) -> None:
        pair = (old.get("$ref"), new.get("$ref"))
        if pair != (None, None):
            if pair in seen:
                return  # a recursive model: already compared on the way down
            seen = seen | {pair}
        old, new = _resolve(old, self.roots[0]), _resolve(new, self.roots[1])
        old_kinds, new_kinds = _kinds(old, self.roots[0]), _kinds(new, self.roots[1])
        backward = _accepts(new_kinds, old_kinds)
        forward = _accepts(old_kinds, new_kinds)
        if not (backward and forward):
            rule = f"type changed from {_label(old_kinds)} to {_label(new_kinds)}"
            self.add(
                path,
                rule,
                *([BACKWARD] if not backward else []),
                *([FORWARD] if not forward else []),
            )
        old_one, new_one = _single(old, self.roots[0]), _single(new, self.roots[1])
        if old_one is None or new_one is None:
            return
        if "enum" in old_one and "enum" in new_one:
            self.enum(old_one["enum"], new_one["enum"], path)
        elif _is_object(old_one) and _is_object(new_one):
            self.fields(old_one, new_one, path, seen)
        elif "items" in old_one and "items" in new_one:
            self.node(old_one["items"], new_one["items"], _join(path, "[]"), seen)
        elif isinstance(old_one.get("additionalProperties"), dict) and isinstance(
            new_one.get("additionalProperties"), dict
        ):
            values = old_one["additionalProperties"], new_one["additionalProperties"]
            self.node(values[0], values[1], _join(path, "{}"), seen)

    def enum(self, old: list[Any], new: list[Any], path: str) -> None:
        removed = [v for v in old if v not in new]
        added = [v for v in new if v not in old]
        if removed:
            self.add(path, f"enum narrowed (removed {_values(removed)})", BACKWARD)
        if added:
            self.add(path, f"enum widened (added {_values(added)})", FORWARD)

    def fields(self, old: Schema, new: Schema, path: str, seen: frozenset[Any]) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_req, new_req = set(old.get("required", ())), set(new.get("required", ()))
        for name in [*old_props, *(n for n in new_props if n not in old_props)]:
            where = _join(path, name)
            if name not in old_props:
                if name in new_req:
                    self.add(where, "added a required field (no default)", BACKWARD)
            elif name not in new_props:
                if name in old_req:
                    self.add(where, "removed a required field (no default)", FORWARD)
            else:
                if name in new_req and name not in old_req:
                    self.add(where, "became required (lost its default)", BACKWARD)
                self.node(old_props[name], new_props[name], where, seen)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _values(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _resolve(node: Schema, root: Schema) -> Schema:
    """`node` with ``$ref`` (and a lone ``allOf`` around one) followed, to a fixed point."""
    for _ in range(64):
        if "$ref" in node:
            ref = node["$ref"]
            target: Any = root
            for part in ref.lstrip("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = target
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        else:
            return node
    return node


def _branches(node: Schema, root: Schema) -> list[Schema]:
    """The alternatives of `node` (``anyOf``/``oneOf``, types listed), resolved."""
    node = _resolve(node, root)
    union = node.get("anyOf") or node.get("oneOf")
    if isinstance(union, list):
        return [b for branch in union for b in _branches(branch, root)]
    if isinstance(node.get("type"), list):
        return [{**node, "type": t} for t in node["type"]]
    return [node]


def _kind(node: Schema) -> str:
    if "const" in node:
        return _json_type(node["const"])
    if "enum" in node and "type" not in node:
        return "|".join(sorted({_json_type(v) for v in node["enum"]})) or "any"
    if _is_object(node):
        return "object"
    kind = node.get("type")
    return kind if isinstance(kind, str) else "any"


def _kinds(node: Schema, root: Schema) -> set[str]:
    return {k for b in _branches(node, root) for k in _kind(b).split("|")}


def _single(node: Schema, root: Schema) -> Schema | None:
    """The one non-null alternative of `node`, or None when there are several."""
    found = [b for b in _branches(node, root) if _kind(b) != "null"]
    if len(found) != 1:
        return None
    one = found[0]
    return {**one, "enum": [one["const"]]} if "const" in one else one


def _is_object(node: Schema) -> bool:
    return (
        node.get("type") == "object"
        and "properties" in node
        or ("properties" in node and "type" not in node)
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "any"


def _accepts(reader: set[str], written: set[str]) -> bool:
    """Whether a reader of `reader` kinds takes every value of `written` kinds."""
    if "any" in reader:
        return True
    return all(k in reader or (k == "integer" and "number" in reader) for k in written)


def _label(kinds: set[str]) -> str:
    return " | ".join(sorted(kinds)) or "nothing"
