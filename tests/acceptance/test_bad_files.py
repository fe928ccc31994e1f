"""Acceptance: the embedded broker refuses files and places it cannot use, with clear errors."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings import BrokerUnavailable, Bus, ConfigError, Event, MessageTooLarge, TidingsError


class Big(Event, type="big.thing"):
    blob: str


async def test_a_foreign_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table customers (id integer primary key, name text)")
        conn.execute("insert into customers (name) values ('ada')")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"app\.db.*not a tidings database"):
        await Bus(f"sqlite:///{path}").start()
    with sqlite3.connect(path) as conn:
        assert conn.execute("select name from customers").fetchall() == [("ada",)]
    assert path.read_bytes() == before


async def test_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not a database at all, just text\n" * 200)
    with pytest.raises(ConfigError, match=r"broken\.db"):
        await Bus(f"sqlite:///{path}").start()


async def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        await Bus(f"sqlite:///{tmp_path / 'nowhere' / 'bus.db'}").start()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a read-only mount: tests run as root, which ignores file modes."""
    target = tmp_path / "ro"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


async def test_a_read_only_location_is_a_clear_error(read_only_dir: Path) -> None:
    path = read_only_dir / "bus.db"
    with pytest.raises(TidingsError, match=r"ro/bus\.db") as info:
        await Bus(f"sqlite:///{path}").start()
    assert isinstance(info.value, ConfigError | BrokerUnavailable)
    assert "\n" not in str(info.value)


async def test_a_ten_megabyte_event_is_refused_at_publish_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    bus = Bus(f"sqlite:///{tmp_path / 'bus.db'}")

    @bus.subscribe("big.thing", group="g")
    async def handle(event: Big) -> None:
        raise AssertionError("never delivered")

    async with bus:
        with pytest.raises(MessageTooLarge, match=r"big\.thing .* over the limit of 1,048,576"):
            await bus.publish(Big(blob="x" * 10_000_000))
        [stats] = await bus.stats()
        assert stats.ready + stats.in_flight + stats.scheduled == 0
