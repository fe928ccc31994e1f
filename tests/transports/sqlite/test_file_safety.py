"""The broker file's safety: the modes it is created with, and a file deleted or replaced
under a running process."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from tests.support import Inbox, eventually
from tidings import BrokerUnavailable, Bus, ConfigError, Event
from tidings.transports import GroupSpec
from tidings.transports.sqlite import SqliteOptions

from .conftest import OpenTransport, message


class Ping(Event, type="x.ping"):
    n: int


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _broker_files(db: Path) -> list[Path]:
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


async def test_a_new_file_and_its_wal_and_shm_are_private_to_their_owner(
    open_transport: OpenTransport, tmp_path: Path
) -> None:
    # Given a permissive umask
    old = os.umask(0o002)
    try:
        # When a transport creates the file and publishes
        transport = await open_transport()
        await transport.declare([GroupSpec("g", ("x.*",))])
        await transport.publish([message("x.y")])
    finally:
        os.umask(old)

    # Then the database, its -wal and its -shm are readable and writable by the owner only
    assert {f.name: _mode(f) for f in _broker_files(tmp_path / "bus.db")} == {
        "bus.db": 0o600,
        "bus.db-wal": 0o600,
        "bus.db-shm": 0o600,
    }


async def test_file_mode_shares_a_new_file_with_the_group(tmp_path: Path) -> None:
    # Given a restrictive umask, and a bus asking for group access
    db = tmp_path / "bus.db"
    bus = Bus(f"sqlite:///{db}", file_mode=0o660)

    @bus.subscribe("x.ping", group="g")
    async def handle(event: Ping) -> None:
        pass

    old = os.umask(0o077)
    try:
        # When it starts on a new file and publishes
        async with bus:
            await bus.publish(Ping(n=1))
            # Then the file, its -wal and its -shm have exactly that mode
            assert [_mode(f) for f in _broker_files(db)] == [0o660] * 3
    finally:
        os.umask(old)


async def test_an_existing_file_keeps_its_mode(
    open_transport: OpenTransport, tmp_path: Path
) -> None:
    # Given a broker file whose owner made it group-readable
    db = tmp_path / "bus.db"
    await (await open_transport()).close()
    db.chmod(0o640)

    # When a transport with the default file_mode opens it again
    await open_transport()

    # Then its mode is left alone
    assert _mode(db) == 0o640


@pytest.mark.parametrize("mode", [0o1777, -1, 0o400, 0o060, "0o600", True, 6.0])
def test_a_bad_file_mode_is_a_config_error(mode: object) -> None:
    with pytest.raises(ConfigError, match="file_mode"):
        SqliteOptions(file_mode=mode)  # type: ignore[arg-type]


async def test_a_file_deleted_under_a_running_process_fails_its_publishes(
    open_transport: OpenTransport, tmp_path: Path
) -> None:
    # Given a transport publishing to its file
    db = tmp_path / "bus.db"
    transport = await open_transport()
    await transport.declare([GroupSpec("g", ("x.*",))])
    assert await transport.publish([message("x.y")]) == [True]

    # When the file is deleted
    db.unlink()

    # Then a publish fails, naming the file, instead of confirming into the deleted one
    with pytest.raises(BrokerUnavailable, match=re.escape(f"{db} was deleted")):
        await transport.publish([message("x.y")])


async def test_a_file_replaced_under_a_running_process_fails_its_publishes(
    open_transport: OpenTransport, tmp_path: Path
) -> None:
    # Given a transport publishing to its file, and another broker file
    db = tmp_path / "bus.db"
    transport = await open_transport()
    await transport.declare([GroupSpec("g", ("x.*",))])
    assert await transport.publish([message("x.y")]) == [True]
    other = tmp_path / "other.db"
    await (await open_transport(f"sqlite:///{other}")).close()

    # When the other file is moved into its place (a restore from a backup)
    other.replace(db)

    # Then a publish fails, naming the file
    with pytest.raises(BrokerUnavailable, match=re.escape(f"{db} was replaced")):
        await transport.publish([message("x.y")])


async def test_the_retained_log_is_bounded_by_bytes_and_the_space_given_back(
    open_transport: OpenTransport, tmp_path: Path
) -> None:
    # Given a group that received and acknowledged 300 events of 10 kB (3 MB of log)
    db = tmp_path / "bus.db"
    transport = await open_transport(retention_bytes=200_000, cleanup_interval=3600.0)
    spec = GroupSpec("g", ("x.*",))
    await transport.declare([spec])
    for _ in range(30):
        await transport.publish([message("x.y", body=b"e" * 10_000) for _ in range(10)])
    inbox = Inbox(transport, auto_ack=True)
    await transport.consume(spec, inbox)
    await eventually(lambda: len(inbox.got) == 300, what="every event delivered")
    await transport.close()
    grown = db.stat().st_size  # closing checkpointed the WAL into it

    # When a transport with a 200 kB bound cleans up
    transport = await open_transport(retention_bytes=200_000, cleanup_interval=0.05)

    # Then only the newest events that fit stay for replay, and the file shrinks
    await eventually(lambda: db.stat().st_size < 1_000_000, what="the file shrunk")
    replayed = await transport.replay("g", 0.0)
    assert 15 <= replayed <= 20, replayed
    assert db.stat().st_size < grown / 3


@pytest.mark.parametrize("size", [0, -1, 1.5, "big", True])
def test_a_bad_retention_bytes_is_a_config_error(size: object) -> None:
    with pytest.raises(ConfigError, match="retention_bytes"):
        SqliteOptions(retention_bytes=size)  # type: ignore[arg-type]
