"""`tidings dlq` for poison letters and failure groups: ``list --poisoned``, ``groups``,
``replay --include-poisoned``, ``--failure-group``, ``--patch`` and ``--edit``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support import eventually
from tidings import Bus, DeadLetters, Event, FailureGroup, Retry

from .conftest import cli, group_stats

pytestmark = pytest.mark.slow

APP = """
from tidings import Bus

bus = Bus({url!r}, poison_after=1)


@bus.subscribe("card.charge", group="billing")
async def charge(event: dict) -> None:
    pass
"""


class Charge(Event, type="card.charge"):
    n: int
    kind: str = "declined"


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[tuple[str, str]]:
    """An application whose bus poisons after one replay: its ``--app`` target and the
    name of its billing handler (a module name of its own: each test imports its file)."""
    name = f"billing_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(APP.format(url=db_url))
    yield f"{path}:bus", f"{name}.charge"
    sys.modules.pop(name, None)


def work(url: str, dead: int, *publish: Charge) -> list[dict[str, Any]]:
    """Run the billing group until its dead-letter queue holds `dead` entries and nothing
    waits; publish `publish` first. The handler fails unless the data says ``fixed``; what
    it handled is returned."""
    bus = Bus(url)
    handled: list[dict[str, Any]] = []

    @bus.subscribe("card.charge", group="billing", retry=Retry(attempts=1))
    async def charge(event: dict[str, Any]) -> None:
        if event.get("fixed"):
            handled.append(event)
            return
        if event["kind"] == "declined":
            raise ValueError(f"card declined for {event['n']}")
        raise KeyError(event["kind"])

    async def settled() -> bool:
        [stats] = [s for s in await bus.stats() if s.group == "billing"]
        return stats.dead == dead and stats.ready + stats.in_flight + stats.scheduled == 0

    async def go() -> None:
        async with bus:
            for event in publish:
                await bus.publish(event)
            await eventually(settled, 20, f"{dead} dead letter(s) and nothing waiting")

    asyncio.run(go())
    return handled


def listing(*args: str) -> list[dict[str, Any]]:
    result = cli("dlq", "list", "billing", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def usage_error(result: Any, text: str) -> None:
    """Exit status 2, and `text` in the usage error (a box that may wrap its words)."""
    assert result.exit_code == 2, result.output
    assert text in " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split()), result.stderr


def one_line_error(result: Any, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert text in lines[0]


def test_poisoned_entries_are_listed_and_left_alone_by_replay_all(
    db_url: str, app: tuple[str, str]
) -> None:
    # Given two dead letters, one of them replayed once and failed again, on an
    # application that poisons after one replay
    target, _ = app
    work(db_url, 2, Charge(n=1), Charge(n=2))
    first = next(e for e in listing("--url", db_url) if e["data"]["n"] == 1)
    replayed = cli("dlq", "replay", "billing", "--id", first["entry_id"], "--app", target)
    assert replayed.stdout.strip() == "replayed 1 dead letter(s) to billing", replayed.output
    work(db_url, 2)

    # When the poisoned entries are listed, by the application's setting
    poisoned = listing("--poisoned", "--app", target)

    # Then only the replayed one is, with both its failures
    [entry] = poisoned
    assert entry["data"]["n"] == 1
    assert (entry["replays"], entry["poisoned"]) == (1, True)
    assert [f["replayed"] for f in entry["history"]] == [False, True]
    assert [f["message"] for f in entry["history"]] == ["card declined for 1"] * 2
    # and by the default setting (3 replays) nothing is poisoned yet
    assert listing("--poisoned", "--url", db_url) == []
    table = cli("dlq", "list", "billing", "--app", target).stdout
    assert "replays" in table
    assert next(x for x in table.splitlines() if entry["entry_id"] in x).count("1 poisoned") == 1
    shown = cli("dlq", "show", "billing", entry["entry_id"][:8], "--app", target).stdout
    assert "1 poisoned" in shown and "(replayed)" in shown and "(published)" in shown

    # When every entry is replayed
    every = cli("dlq", "replay", "billing", "--all", "--app", target)

    # Then the poisoned one stays, and the output says so
    assert every.exit_code == 0, every.output
    assert every.stdout.strip() == (
        "replayed 1 dead letter(s) to billing; 1 poisoned left in the queue "
        "(--include-poisoned replays them too)"
    )
    stats = group_stats(db_url)["billing"]
    assert (stats["ready"], stats["dead"]) == (1, 1)

    # And with --include-poisoned it goes back too
    forced = cli("dlq", "replay", "billing", "--all", "--include-poisoned", "--app", target)
    assert forced.stdout.strip() == "replayed 1 dead letter(s) to billing", forced.output
    stats = group_stats(db_url)["billing"]
    assert (stats["ready"], stats["dead"]) == (2, 0)


def test_include_poisoned_goes_with_all(db_url: str) -> None:
    for args in (["--id", "abcdef"], ["--failure-group", "abcdef"]):
        result = cli("dlq", "replay", "billing", *args, "--include-poisoned", "--url", db_url)
        usage_error(result, "--include-poisoned goes with --all")


def test_groups_gather_entries_by_failure(db_url: str, app: tuple[str, str]) -> None:
    # Given two declined cards and one missing item
    target, handler = app
    work(db_url, 3, Charge(n=1), Charge(n=2, kind="missing"), Charge(n=3))
    by_n = {e["data"]["n"]: e["entry_id"] for e in listing("--url", db_url)}
    assert "replays" not in cli("dlq", "list", "billing", "--url", db_url).stdout  # none yet

    # When they are grouped
    result = cli("dlq", "groups", "billing", "--json", "--app", target)

    # Then the declined cards are one group, the missing item another, biggest first
    assert result.exit_code == 0, result.output
    declined, missing = json.loads(result.stdout)
    assert (declined["count"], missing["count"]) == (2, 1)
    assert declined["exception_type"] == "builtins.ValueError"
    assert missing["exception_type"] == "builtins.KeyError"
    assert declined["entry_ids"] == [by_n[1], by_n[3]]
    assert missing["entry_ids"] == [by_n[2]]
    assert declined["handler"] == handler
    assert declined["top_frame"].startswith("cli/test_dlq_poison.py:")
    assert declined["top_frame"].endswith(" in charge")
    assert declined["first_seen"] <= declined["last_seen"]

    # And the table shows them, whole
    table = cli("dlq", "groups", "billing", "--app", target)
    assert table.exit_code == 0, table.output
    row = next(x for x in table.stdout.splitlines() if declined["signature"] in x)
    for cell in ("2", "ValueError", handler, declined["top_frame"]):
        assert cell in row
    assert "2 failure group(s), 3 dead letter(s) in billing" in table.stdout
    assert "--app" not in table.stdout

    # Without --app the handlers are unknown, and the output says how to name them
    bare = cli("dlq", "groups", "billing", "--url", db_url)
    assert "handlers are named with --app MODULE:bus" in bare.stdout
    assert handler not in bare.stdout


def test_an_empty_queue_has_no_groups(db_url: str) -> None:
    work(db_url, 0)
    assert cli("dlq", "groups", "billing", "--url", db_url).stdout.strip() == (
        "no dead letters in billing"
    )
    assert json.loads(cli("dlq", "groups", "billing", "--json", "--url", db_url).stdout) == []


def test_a_failure_group_is_replayed_by_a_prefix_of_its_signature(
    db_url: str, app: tuple[str, str]
) -> None:
    # Given two failure groups
    target, _ = app
    work(db_url, 3, Charge(n=1), Charge(n=2, kind="missing"), Charge(n=3))
    declined, _missing = json.loads(
        cli("dlq", "groups", "billing", "--json", "--app", target).stdout
    )

    # When one is replayed by the first 6 characters of its signature
    result = cli(
        "dlq", "replay", "billing", "--failure-group", declined["signature"][:6], "--app", target
    )

    # Then its two entries go back to the group, the other stays
    assert result.stdout.strip() == "replayed 2 dead letter(s) to billing", result.output
    stats = group_stats(db_url)["billing"]
    assert (stats["ready"], stats["dead"]) == (2, 1)
    left = listing("--url", db_url)
    assert [e["data"]["n"] for e in left] == [2]


@pytest.mark.parametrize(
    ("given", "message"),
    [("0123456789ab", "no failure group '0123456789ab' in billing"), ("012", "at least 6")],
)
def test_an_unknown_failure_group_is_one_line(db_url: str, given: str, message: str) -> None:
    work(db_url, 1, Charge(n=1))
    result = cli("dlq", "replay", "billing", "--failure-group", given, "--url", db_url)
    one_line_error(result, 1, message)


def test_an_ambiguous_signature_prefix_exits_2_naming_the_candidates(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two failure groups whose signatures start alike (12 hex digits rarely do)
    work(db_url, 2, Charge(n=1), Charge(n=2, kind="missing"))
    real = DeadLetters.groups

    async def alike(self: DeadLetters) -> list[FailureGroup]:
        found = await real(self)
        return [replace(g, signature=f"abcdef{n:06d}") for n, g in enumerate(found)]

    monkeypatch.setattr(DeadLetters, "groups", alike)

    # When one is asked for by the common start
    result = cli("dlq", "replay", "billing", "--failure-group", "abcdef", "--url", db_url)

    # Then the command exits 2 naming both, and nothing was replayed
    one_line_error(result, 2, "is the start of 2 failure groups in billing")
    assert "abcdef000000" in result.stderr and "abcdef000001" in result.stderr
    assert group_stats(db_url)["billing"]["dead"] == 2


def test_patch_merges_into_the_data_of_one_entry(db_url: str) -> None:
    # Given a declined card
    work(db_url, 1, Charge(n=1))
    [entry] = listing("--url", db_url)

    # When it is replayed with a merge patch that fixes it and drops a member
    result = cli(
        "dlq", "replay", "billing", "--id", entry["entry_id"][:6],
        "--patch", '{"fixed": true, "kind": null}', "--url", db_url,
    )  # fmt: skip

    # Then the handler gets the patched data
    assert result.stdout.strip() == "replayed 1 dead letter(s) to billing", result.output
    assert work(db_url, 0) == [{"n": 1, "fixed": True}]


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--patch", "{fixed"], 2, "--patch is not JSON"),
        (["--patch", "{}", "--id", "x"], 2, "exactly one --id"),
        (["--patch", "{}", "--edit"], 2, "not both"),
    ],
)
def test_a_bad_patch_replays_nothing(db_url: str, args: list[str], code: int, text: str) -> None:
    work(db_url, 1, Charge(n=1))
    [entry] = listing("--url", db_url)
    result = cli("dlq", "replay", "billing", "--id", entry["entry_id"], *args, "--url", db_url)
    if "JSON" in text:
        one_line_error(result, code, text)
    else:
        usage_error(result, text)
    assert group_stats(db_url)["billing"]["dead"] == 1


def test_patch_and_edit_need_one_id(db_url: str) -> None:
    for args in (["--all", "--patch", "{}"], ["--all", "--edit"]):
        result = cli("dlq", "replay", "billing", *args, "--url", db_url)
        usage_error(result, "exactly one --id")


EDITOR = textwrap.dedent(
    """
    import json, os, stat, sys
    from pathlib import Path

    path = Path(sys.argv[1])
    record = Path(os.environ["EDITOR_RECORD"])
    record.write_text(json.dumps({"path": str(path), "mode": stat.S_IMODE(path.stat().st_mode),
                                  "text": path.read_text()}))
    how = os.environ["EDITOR_DOES"]
    if how == "fix":
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, "fixed": True}))
    elif how == "empty":
        path.write_text("   \\n")
    elif how == "break":
        path.write_text("{not json")
    elif how == "reformat":
        path.write_text(json.dumps(json.loads(path.read_text())))
    elif how == "fail":
        sys.exit(3)
    """
)


def edit(tmp_path: Path, url: str, entry_id: str, does: str) -> tuple[Any, dict[str, Any]]:
    """`tidings dlq replay billing --id ENTRY --edit` with an editor that `does` something;
    the result, and what the editor saw."""
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    record = tmp_path / "editor.json"
    env = {
        "EDITOR": f"{sys.executable} {script}",
        "EDITOR_RECORD": str(record),
        "EDITOR_DOES": does,
    }
    result = cli("dlq", "replay", "billing", "--id", entry_id, "--edit", "--url", url, env=env)
    return result, json.loads(record.read_text())


def test_edit_replays_the_data_as_saved_in_the_editor(db_url: str, tmp_path: Path) -> None:
    # Given a declined card
    work(db_url, 1, Charge(n=1))
    [entry] = listing("--url", db_url)

    # When its data is edited to fix it
    result, seen = edit(tmp_path, db_url, entry["entry_id"][:6], "fix")

    # Then the editor had the data as indented JSON, in a file only its owner can read,
    # deleted since, and the fixed event is handled
    assert result.stdout.strip() == "replayed 1 dead letter(s) to billing", result.output
    assert json.loads(seen["text"]) == {"n": 1, "kind": "declined"}
    assert seen["text"].startswith("{\n  ")
    assert seen["mode"] == 0o600
    assert not os.path.exists(seen["path"])
    assert work(db_url, 0) == [{"n": 1, "kind": "declined", "fixed": True}]


@pytest.mark.parametrize(
    ("does", "code", "said"),
    [
        ("nothing", 0, "nothing replayed: the data is unchanged"),
        ("reformat", 0, "nothing replayed: the data is unchanged"),
        ("empty", 0, "nothing replayed: the file was left empty"),
        ("break", 2, "error: the edited data is not JSON"),
        ("fail", 1, "error: the editor"),
    ],
)
def test_an_edit_that_changes_nothing_or_fails_replays_nothing(
    db_url: str, tmp_path: Path, does: str, code: int, said: str
) -> None:
    work(db_url, 1, Charge(n=1))
    [entry] = listing("--url", db_url)

    result, seen = edit(tmp_path, db_url, entry["entry_id"], does)

    assert result.exit_code == code, result.output
    assert said in result.output
    if code:
        one_line_error(result, code, said.removeprefix("error: "))
    assert not os.path.exists(seen["path"])
    stats = group_stats(db_url)["billing"]
    assert (stats["ready"], stats["dead"]) == (0, 1)
