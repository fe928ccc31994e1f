"""A full disk when the broker file is created or opened is said as such: `BrokerUnavailable`
naming the file and saying the disk is full, in one line; an old file whose migration does
not fit is left as it was.

A full disk is made without a small file system: SQLite's ``max_page_count`` caps the file
for the broker's own connections, and SQLite then fails exactly as on a full disk
(``SQLITE_FULL``, "database or disk is full")."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidings import BrokerUnavailable
from tidings.transports.sqlite import sqlite_path

from .conftest import OpenTransport
from .schema_v1 import build_v1_file, schema_version


@pytest.fixture
def page_limits(monkeypatch: pytest.MonkeyPatch) -> dict[Path, int]:
    """Files whose connections may not grow past a number of pages (a full disk)."""
    limits: dict[Path, int] = {}
    real = sqlite3.connect

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(database, *args, **kwargs)
        pages = limits.get(Path(database))
        if pages is not None:
            conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    return limits


def _pages(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


def _says_disk_full(path: Path) -> Callable[[BaseException], None]:
    def check(exc: BaseException) -> None:
        text = str(exc)
        assert isinstance(exc, BrokerUnavailable), text
        assert str(path) in text and "the disk is full" in text and "\n" not in text

    return check


async def test_creating_the_file_on_a_full_disk_says_so(
    open_transport: OpenTransport, db_url: str, page_limits: dict[Path, int]
) -> None:
    # Given a disk with room for two pages of a new file
    path = sqlite_path(db_url)
    page_limits[path] = 2

    # When a transport creates the broker file there
    with pytest.raises(BrokerUnavailable) as info:
        await open_transport()

    # Then the error names the file and says the disk is full
    _says_disk_full(path)(info.value)


async def test_an_old_file_whose_migration_does_not_fit_is_left_as_it_was(
    open_transport: OpenTransport, db_url: str, page_limits: dict[Path, int]
) -> None:
    # Given a version-1 file on a disk with no room to grow
    path = sqlite_path(db_url)
    build_v1_file(path, time.time())
    page_limits[path] = _pages(path)

    # When a transport opens it, the migration fails as the disk is full
    with pytest.raises(BrokerUnavailable) as info:
        await open_transport()
    _says_disk_full(path)(info.value)

    # Then the file is still of version 1, and once there is room it migrates, data intact
    assert schema_version(path) == 1
    del page_limits[path]
    transport = await open_transport()
    assert {s.group: s.ready for s in await transport.stats()} == {"ledger": 1, "orders": 1}


async def test_no_space_to_create_the_file_says_the_disk_is_full(
    open_transport: OpenTransport, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a file system that refuses new files for want of space
    path = sqlite_path(db_url)
    real_open = os.open

    def no_space(file: Any, *args: Any, **kwargs: Any) -> int:
        if Path(file) == path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_space)

    # Then creating the broker file says the disk is full
    with pytest.raises(BrokerUnavailable) as info:
        await open_transport()
    _says_disk_full(path)(info.value)
    assert not path.exists()


@pytest.mark.parametrize(("free", "full"), [(0, True), (64 * 1024**2, False)])
def test_an_io_error_on_opening_is_a_full_disk_when_no_space_is_left(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, free: int, full: bool
) -> None:
    # SQLite reports a -shm file it cannot size (no space for it) as an I/O error
    from tidings.transports.sqlite._errors import translate_error

    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = 4874  # type: ignore[attr-defined]  # SQLITE_IOERR_SHMSIZE
    stat = os.statvfs(tmp_path)
    fake = os.statvfs_result((*stat[:4], free // stat.f_frsize, *stat[5:]))
    monkeypatch.setattr(os, "statvfs", lambda _: fake)

    translated = translate_error(error, tmp_path / "bus.db", opening=True)

    assert isinstance(translated, BrokerUnavailable)
    assert ("the disk is full" in str(translated)) is full
    assert str(tmp_path / "bus.db") in str(translated)
