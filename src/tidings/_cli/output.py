"""What commands print on stdout: a console, plain tables, JSON.

Output that is not a terminal is never truncated: tables are rendered at their natural
width, so a pipe or a file gets every character of every cell. On a terminal no cell is cut
short either: a cell too wide for its column wraps (folds), and an id column (entry ids,
group names) keeps each id whole on one line wherever it fits.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Column, Table

__all__ = ["id_column", "stdout_console", "table", "to_json"]

# Wide enough for any cell, so piped output is never cut or wrapped by rich.
_PIPE_WIDTH = 100_000


def stdout_console() -> Console:
    """A console on stdout: the terminal's width on a terminal, unlimited otherwise."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, width=_PIPE_WIDTH, soft_wrap=True)


# An id up to this long stays on one line; a longer one folds rather than squeeze every
# other column out of a terminal.
_ONE_LINE_ID = 40


def id_column(header: str, ids: Iterable[str]) -> Column:
    """A column of ids (entry ids, group names): each whole on one line when the longest is
    at most 40 characters, folded over lines when longer; never cut short."""
    longest = max((len(i) for i in ids), default=0)
    if longest <= _ONE_LINE_ID:
        return Column(header, no_wrap=True, min_width=max(longest, len(header)))
    return Column(header, overflow="fold")


def table(*columns: str | Column, title: str | None = None, right: Iterable[str] = ()) -> Table:
    """A plain table with the given columns (headers, or `Column`s as they are); headers in
    `right` are right-aligned. Cells too wide fold over lines, never end in an ellipsis."""
    aligned = set(right)
    made = [
        c
        if isinstance(c, Column)
        else Column(c, justify="right" if c in aligned else "left", overflow="fold")
        for c in columns
    ]
    return Table(
        *made,
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )


def to_json(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON text: non-ASCII kept as is, anything else JSON lacks (times) as str."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)
