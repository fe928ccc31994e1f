"""The embedded broker's file: URLs, bad files and places, locks, lifecycle, clean-up."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Inbox, eventually
from tidings import BrokerUnavailable, ConfigError, StateError
from tidings.transports import GroupSpec, TransportOptions
from tidings.transports.sqlite import SqliteOptions, SqliteTransport, create_transport, sqlite_path

from .conftest import OpenTransport, message


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/bus.db",
        "sqlite://",
        "sqlite:///",
        "sqlite:///dir/",
        "sqlite:///:memory:",
        "sqlite:///bus.db?mode=ro",
        "postgresql:///bus.db",
    ],
)
def test_a_malformed_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        SqliteTransport(url, TransportOptions())


def test_urls_follow_sqlalchemy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_path("sqlite:///bus.db") == tmp_path / "bus.db"
    assert sqlite_path("sqlite:///data/bus.db") == tmp_path / "data" / "bus.db"
    assert sqlite_path("sqlite:////var/lib/bus.db") == Path("/var/lib/bus.db")


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"synchronous": "SOMETIMES"}, "synchronous"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"busy_timeout": "long"}, "busy_timeout"),
        ({"wake": "yes"}, "wake"),
        ({"polling": 1.0}, "unknown sqlite option"),
    ],
)
def test_bad_options_are_config_errors(
    options: dict[str, object], complaint: str, tmp_path: Path
) -> None:
    # Given a bus URL whose file does not exist; When it is opened with a bad option
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    with pytest.raises(ConfigError, match=complaint):
        create_transport(url, {"lease": 30.0, **options})
    # Then nothing was created
    assert not (tmp_path / "bus.db").exists()


def test_options_are_normalised() -> None:
    settings = SqliteOptions(synchronous="normal", poll_interval=2)
    assert settings.synchronous == "NORMAL"
    assert settings.poll_interval == 2.0 and isinstance(settings.poll_interval, float)


async def test_a_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    before = path.read_bytes()

    transport = SqliteTransport(f"sqlite:///{path}", TransportOptions())
    with pytest.raises(ConfigError, match=r"app\.db is not a tidings database"):
        await transport.open()

    assert path.read_bytes() == before
    await transport.close()


async def test_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.db"
    path.write_bytes(os.urandom(16384))
    transport = SqliteTransport(f"sqlite:///{path}", TransportOptions())
    with pytest.raises(ConfigError, match=r"noise\.db is not a SQLite database") as info:
        await transport.open()
    assert "\n" not in str(info.value)


async def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    transport = SqliteTransport(f"sqlite:///{tmp_path / 'nowhere' / 'bus.db'}", TransportOptions())
    with pytest.raises(ConfigError, match=r"directory .*nowhere does not exist"):
        await transport.open()
    assert not (tmp_path / "nowhere").exists()


async def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bus.db").mkdir()
    transport = SqliteTransport(f"sqlite:///{tmp_path / 'bus.db'}", TransportOptions())
    with pytest.raises(ConfigError, match=r"bus\.db"):
        await transport.open()


async def test_a_file_from_a_newer_release_is_refused(
    open_transport: OpenTransport, db_url: str
) -> None:
    transport = await open_transport()
    await transport.close()
    path = sqlite_path(db_url)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()

    with pytest.raises(ConfigError, match="newer tidings"):
        await open_transport()


async def test_a_lock_held_too_long_by_another_process_is_reported(
    open_transport: OpenTransport, db_url: str
) -> None:
    transport = await open_transport(busy_timeout=0.2)
    await transport.declare([GroupSpec("g", ("x.*",))])
    other = sqlite3.connect(sqlite_path(db_url), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BrokerUnavailable, match=r"bus\.db is locked by another process"):
            await transport.publish([message("x.y")])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await transport.publish([message("x.y")]) == [True]


async def test_the_lifecycle_is_enforced(db_url: str) -> None:
    transport = SqliteTransport(db_url, TransportOptions())
    with pytest.raises(StateError):
        await transport.publish([message()])
    async with transport:
        with pytest.raises(StateError):
            await transport.open()
        await transport.ping()
    await transport.close()  # twice is fine
    with pytest.raises(StateError):
        await transport.publish([message()])


def _count(db_url: str, table: str) -> int:
    conn = sqlite3.connect(sqlite_path(db_url))
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


async def test_old_log_entries_and_expired_markers_are_cleaned_up(
    open_transport: OpenTransport, db_url: str
) -> None:
    # Given a short retention, a delivered event, a pending delivery and a short marker
    transport = await open_transport(retention=0.3, cleanup_interval=0.05)
    early, spec = GroupSpec("early", ("x.early",)), GroupSpec("g", ("x.pending",))
    await transport.declare([early, spec])
    delivered = Inbox(transport, auto_ack=True)
    await transport.consume(early, delivered)
    await transport.publish([message("x.early")])
    await eventually(lambda: delivered.got, what="the early event delivered")
    pending = message("x.pending", body=b"still needed")
    await transport.publish([pending])
    await transport.dedupe_store().mark("g", "e1", 0.1)

    # Then once retention passes, only what a delivery still needs stays in the log
    await eventually(lambda: _count(db_url, "log") == 1, what="the old delivered entry removed")
    await eventually(lambda: _count(db_url, "dedupe") == 0, what="the expired marker removed")
    inbox = Inbox(transport, auto_ack=True)
    await transport.consume(spec, inbox)
    await eventually(lambda: inbox.got, what="the pending delivery")
    assert inbox.got[0].body == b"still needed"
    await eventually(lambda: _count(db_url, "log") == 0, what="the delivered entry removed")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB file system (tests run as root, like the acceptance suite's read-only mount)."""
    target = tmp_path / "small"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "--lazy", str(target)], check=True)


async def test_a_full_disk_is_a_clear_error_and_confirmed_messages_stay(
    small_disk: Path, open_transport: OpenTransport
) -> None:
    transport = await open_transport(f"sqlite:///{small_disk / 'bus.db'}")
    await transport.declare([GroupSpec("g", ("x.*",))])
    confirmed = 0

    # When publishes outgrow the disk
    with pytest.raises(BrokerUnavailable, match=r"disk full writing .*bus\.db") as info:
        for _ in range(100):
            await transport.publish([message("x.big", body=os.urandom(64 * 1024))])
            confirmed += 1

    # Then the error is one line naming the file, and what was confirmed is intact
    assert "\n" not in str(info.value)
    [stats] = await transport.stats()
    assert stats.ready == confirmed > 0
    await transport.close()  # before the file system goes away
