"""Noticing that the broker file was deleted or replaced under a running process.

An open SQLite connection keeps writing to the inode it opened: after ``rm bus.db`` (or a
restore that moves another file into place) every commit would still succeed, into a file
no other process can see, and a publish would be confirmed and then lost. The writer
compares the path's identity with the one it opened before and after each commit.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..._exceptions import BrokerUnavailable

__all__ = ["FileIdentity"]


class FileIdentity:
    """The device and inode `path` had when it was opened.

    Args:
        path: the database file, just opened.
    """

    __slots__ = ("_opened", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._opened = self._current()

    def _current(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def check(self) -> None:
        """Raise unless `path` is still the file that was opened.

        Raises:
            BrokerUnavailable: the file was deleted, or another file took its place; it
                names the file and says to restart the processes using it.
        """
        current = self._current()
        if current == self._opened:
            return
        what = "was deleted" if current is None else "was replaced by another file"
        raise BrokerUnavailable(
            f"database {self.path} {what} while this process had it open; nothing more is "
            "written to the old file: restart the processes that use it"
        )
