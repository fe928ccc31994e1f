"""`tidings dlq` end to end: a handler fails, its events are inspected, replayed, purged."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import sqlite3
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.support import eventually, wait_for
from tidings import Bus, DeadLetters, Event, Retry

from .conftest import Workers, cli, group_stats, stop

pytestmark = pytest.mark.slow


def dead_letters(url: str) -> list[dict[str, object]]:
    result = cli("dlq", "list", "failing", "--json", "--url", url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_dead_letters_listed_shown_replayed_and_purged(
    workers: Workers, db_url: str, out: Path
) -> None:
    # Given a handler that always raises, and three events it failed on
    (out / "broken").write_text("")
    worker = workers.run(consumers={"failing": 1})
    for n in (1, 2, 3):
        assert (
            cli("publish", "test.fail", "-d", json.dumps({"n": n}), "--url", db_url).exit_code == 0
        )
    entries = wait_for(lambda: len(dead_letters(db_url)) == 3 and dead_letters(db_url),
                       what="three dead letters")  # fmt: skip
    by_n = {e["data"]["n"]: e for e in entries}

    # When they are listed
    listing = cli("dlq", "list", "failing", "--url", db_url)

    # Then the table shows each entry with why it failed
    assert listing.exit_code == 0, listing.output
    for n, entry in by_n.items():
        line = next(x for x in listing.stdout.splitlines() if str(entry["entry_id"]) in x)
        assert f"failed 2 of 2 attempts: RuntimeError: boom {n}" in line
    assert "3 dead letter(s) in failing" in listing.stdout

    # And one is shown in full, with its traceback and data
    first = by_n[1]
    shown = cli("dlq", "show", "failing", str(first["entry_id"]), "--url", db_url)
    assert shown.exit_code == 0, shown.output
    assert "RuntimeError: boom 1" in shown.stdout
    assert "Traceback" in shown.stdout
    assert '"n": 1' in shown.stdout
    detail = json.loads(
        cli("dlq", "show", "failing", str(first["entry_id"]), "--json", "--url", db_url).stdout
    )
    assert detail["data"] == {"n": 1}
    assert detail["attempts"] == 2
    assert detail["exception_type"] == "builtins.RuntimeError"
    assert "boom 1" in detail["traceback"]
    assert detail["envelope"]["type"] == "test.fail"

    # When the bug is fixed and one entry is replayed by id
    (out / "broken").unlink()
    replayed = cli("dlq", "replay", "failing", "--id", str(first["entry_id"]), "--url", db_url)

    # Then it goes back to the group and is handled
    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout.strip() == "replayed 1 dead letter(s) to failing"
    wait_for(lambda: (out / "fixed-1").exists(), what="the replayed event to be handled")

    # When another is purged, and all the rest replayed
    purged = cli("dlq", "purge", "failing", "--id", str(by_n[2]["entry_id"]), "--url", db_url)
    assert purged.exit_code == 0, purged.output
    assert purged.stdout.strip() == "purged 1 dead letter(s) from failing"
    rest = cli("dlq", "replay", "failing", "--all", "--url", db_url)
    assert rest.stdout.strip() == "replayed 1 dead letter(s) to failing"

    # Then the queue is empty, the replayed one handled, the purged one gone
    wait_for(lambda: (out / "fixed-3").exists(), what="the last replayed event")
    assert dead_letters(db_url) == []
    assert not (out / "fixed-2").exists()
    empty = cli("dlq", "list", "failing", "--url", db_url)
    assert "no dead letters in failing" in empty.stdout
    stop(worker)


def test_replay_all_puts_entries_back_in_the_group(
    workers: Workers, db_url: str, out: Path
) -> None:
    # Given a dead letter, and no worker running any more
    (out / "broken").write_text("")
    worker = workers.run(consumers={"failing": 1})
    assert cli("publish", "test.fail", "-d", '{"n": 9}', "--url", db_url).exit_code == 0
    wait_for(lambda: dead_letters(db_url), what="a dead letter")
    stop(worker)

    # When every entry is replayed
    result = cli("dlq", "replay", "failing", "--all", "--url", db_url)

    # Then it waits in the group again, out of the dead-letter queue
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "replayed 1 dead letter(s) to failing"
    stats = group_stats(db_url)["failing"]
    assert (stats["ready"], stats["dead"]) == (1, 0)


@pytest.mark.parametrize("args", [[], ["--id", "x", "--all"]])
def test_replay_and_purge_need_ids_or_all(db_url: str, args: list[str]) -> None:
    for verb in ("replay", "purge"):
        result = cli("dlq", verb, "failing", *args, "--url", db_url)
        assert result.exit_code == 2
        assert "--all" in result.stderr


def test_show_of_a_missing_entry_is_one_line(workers: Workers, db_url: str) -> None:
    worker = workers.run(consumers={"failing": 1})
    stop(worker)
    result = cli("dlq", "show", "failing", "no-such-entry", "--url", db_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def make_dead_letters(url: str, count: int, group: str = "broken") -> list[str]:
    """`count` dead letters in `group` (a handler that always raises, one attempt); their
    entry ids, oldest first."""
    bus = Bus(url)

    @bus.subscribe("test.broken", group=group, retry=Retry(attempts=1))
    async def fail(event: dict[str, object]) -> None:
        raise RuntimeError(f"card declined by the bank for order {event['n']}")

    class Broken(Event, type="test.broken"):
        n: int

    async def go() -> list[str]:
        async with bus:
            for n in range(count):
                await bus.publish(Broken(n=n))
            letters = bus.dead_letters(group)
            await eventually(lambda: _count(letters, count), timeout=20)
            return [e.entry_id for e in await letters.list(limit=count)]

    return asyncio.run(go())


async def _count(letters: DeadLetters, count: int) -> bool:
    return len(await letters.list(limit=count + 1)) == count


def share_a_prefix(url: str, prefix: str) -> list[str]:
    """Give every dead letter an entry id starting with `prefix` (written into the broker
    file: the ids are random, and an ambiguous prefix needs two that start alike)."""
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        rows = conn.execute("SELECT entry_id FROM dead_letters ORDER BY entry_id").fetchall()
        ids = [f"{prefix}{n:02d}{old[len(prefix) + 2 :]}" for n, (old,) in enumerate(rows)]
        for (old,), new in zip(rows, ids, strict=True):
            conn.execute("UPDATE dead_letters SET entry_id = ? WHERE entry_id = ?", (new, old))
    return ids


def test_list_shows_whole_entry_ids_on_a_100_column_terminal(db_url: str) -> None:
    # Given dead letters with long reasons
    ids = make_dead_letters(db_url, 3)

    # When they are listed on a terminal 100 columns wide (a pseudo-terminal)
    screen = on_a_terminal(["dlq", "list", "broken", "--url", db_url], columns=100)

    # Then every line fits, and each entry id is whole on one line
    lines = screen.splitlines()
    assert all(len(line) <= 100 for line in lines), screen
    for entry_id in ids:
        assert any(entry_id in line for line in lines), screen
    assert "…" not in screen
    assert "3 dead letter(s) in broken" in screen


def test_piped_and_json_listings_are_never_cut(db_url: str) -> None:
    ids = make_dead_letters(db_url, 2)
    piped = cli("dlq", "list", "broken", "--url", db_url)
    assert piped.exit_code == 0, piped.output
    for entry_id in ids:
        line = next(x for x in piped.stdout.splitlines() if entry_id in x)
        assert "RuntimeError: card declined by the bank for order" in line
    assert "…" not in piped.stdout
    listed = json.loads(cli("dlq", "list", "broken", "--json", "--url", db_url).stdout)
    assert [e["entry_id"] for e in listed] == ids


def test_show_replay_and_purge_take_a_unique_prefix(db_url: str) -> None:
    # Given three dead letters
    first, second, third = make_dead_letters(db_url, 3)

    # When one is shown by the first 6 characters of its id
    shown = cli("dlq", "show", "broken", first[:6], "--json", "--url", db_url)

    # Then it is that entry
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["entry_id"] == first

    # And replay and purge take prefixes too
    replayed = cli("dlq", "replay", "broken", "--id", second[:8], "--url", db_url)
    assert replayed.stdout.strip() == "replayed 1 dead letter(s) to broken", replayed.output
    purged = cli("dlq", "purge", "broken", "--id", third[:10], "--url", db_url)
    assert purged.stdout.strip() == "purged 1 dead letter(s) from broken", purged.output
    left = json.loads(cli("dlq", "list", "broken", "--json", "--url", db_url).stdout)
    assert [e["entry_id"] for e in left] == [first]


def test_an_ambiguous_prefix_exits_2_naming_the_candidates(db_url: str) -> None:
    # Given two dead letters whose ids start alike
    make_dead_letters(db_url, 2)
    ids = share_a_prefix(db_url, "abcdef")

    # When one is asked for by the common start, for show and for replay
    for args in (["show", "broken", "abcdef"], ["replay", "broken", "--id", "abcdef0"]):
        result = cli("dlq", *args, "--url", db_url)

        # Then the command exits 2 and lists both, in one line
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert all(entry_id in lines[0] for entry_id in ids)
    # and nothing was replayed
    assert len(json.loads(cli("dlq", "list", "broken", "--json", "--url", db_url).stdout)) == 2


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("zzzzzzzz", "no dead letter 'zzzzzzzz' in broken"),
        ("zzz", "at least 6 characters"),
    ],
)
def test_an_unknown_id_is_one_line(db_url: str, given: str, message: str) -> None:
    make_dead_letters(db_url, 1)
    for args in (["show", "broken", given], ["replay", "broken", "--id", given]):
        result = cli("dlq", *args, "--url", db_url)
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert message in lines[0]


def on_a_terminal(args: list[str], columns: int) -> str:
    """What `tidings ARGS` prints on a pseudo-terminal `columns` wide (through the real
    entry point)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings", *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    with contextlib.suppress(OSError):  # EIO once the child closed the terminal
        while chunk := os.read(leader, 65536):
            chunks.append(chunk)
    os.close(leader)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
