"""Sections of ``benchmarks.md`` written by hand from a benchmark script of their own (the
outbox, the observability middleware), which ``python -m benchmarks`` does not measure.

Each stands between ``<!-- benchmarks:kept:start -->`` and ``<!-- benchmarks:kept:end -->``
in the page; writing the page again carries every such section over from the page it
replaces, in order, after the generated ones (before the machine), so a regeneration never
drops them.
"""

from __future__ import annotations

import re
from pathlib import Path

KEPT_START = "<!-- benchmarks:kept:start -->"
KEPT_END = "<!-- benchmarks:kept:end -->"

_KEPT = re.compile(re.escape(KEPT_START) + r".*?" + re.escape(KEPT_END), re.S)


def kept_sections(page: Path) -> list[str]:
    """The hand-written sections of `page` (markers included), in order; none when the page
    does not exist."""
    if not page.is_file():
        return []
    return [found.group(0) + "\n" for found in _KEPT.finditer(page.read_text())]
