"""`tidings dlq` end to end: a handler fails, its events are inspected, replayed, purged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import wait_for

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
