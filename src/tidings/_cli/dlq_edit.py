"""Editing a dead letter's data in ``$EDITOR`` (``tidings dlq replay --id ID --edit``).

The data is written as indented JSON to a temporary file only its owner can read (mode
0600: dead letters hold customers' data), the editor runs on it in the foreground, and the
file is deleted whatever happens. A file left empty or unchanged replays nothing, as when
a commit message is left empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["EditFailed", "NothingToReplay", "edit_in_editor"]

DEFAULT_EDITOR = "vi"


class NothingToReplay(Exception):
    """The file was left empty or the data unchanged: nothing is replayed (not an error)."""


class EditFailed(Exception):
    """The editor could not run or failed, or the file is not JSON (``code``: the exit
    status the command ends with)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _editor() -> list[str]:
    """The editor's command line: ``$EDITOR`` split as a shell would (``code --wait``)."""
    given = os.environ.get("EDITOR", "").strip() or DEFAULT_EDITOR
    try:
        words = shlex.split(given)
    except ValueError as exc:
        raise EditFailed(f"cannot read EDITOR={given!r}: {exc}") from None
    return words or [DEFAULT_EDITOR]


def edit_in_editor(data: Any) -> Any:
    """`data` as the user edited it in their editor.

    Raises:
        NothingToReplay: the file was left empty, or with the same data.
        EditFailed: the editor could not be run or exited non-zero (status 1), or the file
            is not JSON (status 2).
    """
    original = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    command = _editor()
    fd, name = tempfile.mkstemp(prefix="tidings-dlq-", suffix=".json")  # mode 0600
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(original)
        try:
            status = subprocess.run([*command, name], check=False).returncode
        except OSError as exc:
            raise EditFailed(f"cannot run the editor {command[0]!r} (set EDITOR): {exc}") from None
        if status != 0:
            raise EditFailed(f"the editor {command[0]!r} exited with status {status}")
        text = path.read_text(encoding="utf-8", errors="replace")
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    if not text.strip():
        raise NothingToReplay("the file was left empty")
    if text == original:
        raise NothingToReplay("the data is unchanged")
    try:
        edited = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise EditFailed(f"the edited data is not JSON: {exc}", code=2) from None
    if edited == data:
        raise NothingToReplay("the data is unchanged")
    return edited
