"""Fail when a module under src/tidings is over the line budget (CONVENTIONS.md: modules
under 400 lines), naming each one; run by scripts/test.sh."""

from __future__ import annotations

import sys
from pathlib import Path

BUDGET = 400
ROOT = Path(__file__).resolve().parent.parent / "src" / "tidings"


def main() -> int:
    over = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > BUDGET:
            over.append(f"{path.relative_to(ROOT.parent)}: {lines} lines")
    for line in over:
        print(f"over the {BUDGET}-line budget: {line}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
