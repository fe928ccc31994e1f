"""What commands print on stdout: a console, plain tables, JSON.

Output that is not a terminal is never truncated: tables are rendered at their natural
width, so a pipe or a file gets every character of every cell.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

__all__ = ["stdout_console", "table", "to_json"]

# Wide enough for any cell, so piped output is never cut or wrapped by rich.
_PIPE_WIDTH = 100_000


def stdout_console() -> Console:
    """A console on stdout: the terminal's width on a terminal, unlimited otherwise."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, width=_PIPE_WIDTH, soft_wrap=True)


def table(*columns: str, title: str | None = None, right: Iterable[str] = ()) -> Table:
    """A plain table with the given column headers (those in `right` right-aligned)."""
    aligned = set(right)
    result = Table(
        title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False
    )
    for column in columns:
        result.add_column(column, justify="right" if column in aligned else "left")
    return result


def to_json(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON text: non-ASCII kept as is, anything else JSON lacks (times) as str."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)
