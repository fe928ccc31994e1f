"""``python -m tidings``: the command line (see `tidings._cli`)."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    main()
