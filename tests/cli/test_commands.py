"""One-shot commands: health, publish, queues, replay, global options and errors."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tidings import Bus

from .conftest import cli, group_stats, wait_for


def declare(url: str, *groups: str, pattern: str = "test.#") -> None:
    """Create `groups` on the broker, as a worker starting would."""
    bus = Bus(url, consume=False)
    for name in groups:

        async def handler(event: dict) -> None:
            pass

        handler.__qualname__ = f"handler_{len(bus.groups)}"
        bus.subscribe(pattern, group=name)(handler)

    async def go() -> None:
        await bus.start()
        await bus.close()

    asyncio.run(go())


# -- health ------------------------------------------------------------------------------


def test_health_ok(db_url: str) -> None:
    result = cli("health", "--url", db_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ok {db_url}"


def test_health_reads_tidings_url_from_the_environment(db_url: str) -> None:
    result = cli("health", env={"TIDINGS_URL": db_url})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ok {db_url}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////nonexistent-dir/deeper/bus.db", "/nonexistent-dir/deeper/bus.db"),
        ("nosuch://host/x", "unknown bus URL scheme nosuch://"),
        ("kafka://localhost:9092", "kafka://"),
        ("not a url", "malformed bus URL"),
    ],
)
def test_health_fails_in_one_line(url: str, message: str) -> None:
    result = cli("health", "--url", url)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    "url",
    [
        "nosuch://admin:s3cr3t-pw@broker.example:5672/vh",
        "amqp://admin:s3cr3t-pw@127.0.0.1:1/vh",
        "admin:s3cr3t-pw@broker.example",
    ],
)
def test_passwords_are_masked_in_errors(url: str) -> None:
    result = cli("health", "--url", url, "--timeout", "5")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "s3cr3t-pw" not in result.output


def test_log_format_json(db_url: str) -> None:
    result = cli("--log-format", "json", "--log-level", "info", "health", "--url", db_url)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.strip().splitlines()]
    assert records, "expected log records at INFO"
    for record in records:
        assert set(record) >= {"time", "level", "logger", "message"}
    assert any(r["level"] == "INFO" and db_url in r["message"] for r in records)


def test_one_shot_commands_log_warnings_only_by_default(db_url: str) -> None:
    result = cli("health", "--url", db_url)
    assert result.exit_code == 0
    assert result.stderr == ""


# -- publish -----------------------------------------------------------------------------


def test_publish_rejects_data_that_is_not_json(db_url: str) -> None:
    result = cli("publish", "test.ping", "--data", "{n: 1", "--url", db_url)
    assert result.exit_code == 2
    assert "--data" in result.stderr
    assert "not valid JSON" in result.stderr


def test_publish_rejects_json_that_is_not_an_object(db_url: str) -> None:
    result = cli("publish", "test.ping", "--data", "[1, 2]", "--url", db_url)
    assert result.exit_code == 2
    assert "JSON object" in result.stderr


def test_publish_unroutable_is_an_error(db_url: str) -> None:
    result = cli("publish", "nobody.listens", "--data", "{}", "--url", db_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no group subscribes to 'nobody.listens'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_publish_reads_data_from_a_file_and_sends_to_one_group(db_url: str, tmp_path: Path) -> None:
    declare(db_url, "inbox")
    (tmp_path / "data.json").write_text('{"a": 1}')
    result = cli("publish", "test.cmd", "-d", f"@{tmp_path / 'data.json'}", "--to", "inbox",
                 "--url", db_url)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert group_stats(db_url)["inbox"]["ready"] == 1


def test_publish_to_a_missing_group_is_an_error(db_url: str) -> None:
    result = cli("publish", "test.cmd", "--to", "nowhere", "--url", db_url)
    assert result.exit_code == 1
    assert "no group named 'nowhere'" in result.stderr


def test_publish_refuses_a_bad_type(db_url: str) -> None:
    result = cli("publish", "order.*", "--url", db_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")


# -- queues ------------------------------------------------------------------------------


def test_queues_table_and_json(db_url: str) -> None:
    # Given two groups, one with a waiting event
    long_name = "a-group-with-a-very-long-name-" + "x" * 150
    declare(db_url, "alpha", long_name)
    assert cli("publish", "test.one", "--url", db_url).exit_code == 0

    # When the queues are listed as a table (not on a terminal)
    table = cli("queues", "--url", db_url)

    # Then every column is there, nothing is cut, and the alert for no consumers shows
    assert table.exit_code == 0, table.output
    for header in ("group", "ready", "in flight", "scheduled", "dead", "consumers", "alerts"):
        assert header in table.stdout
    assert long_name in table.stdout
    assert "…" not in table.stdout
    alpha = next(line for line in table.stdout.splitlines() if line.strip().startswith("alpha"))
    assert "no consumers while 1 messages wait" in alpha

    # And as JSON, one object per group with the GroupStats fields
    rows = json.loads(cli("queues", "--json", "--url", db_url).stdout)
    by_group = {r["group"]: r for r in rows}
    assert set(by_group) >= {"alpha", long_name}
    assert by_group["alpha"]["ready"] == 1
    assert by_group["alpha"]["consumers"] == 0
    assert set(by_group["alpha"]) >= {
        "in_flight", "scheduled", "dead", "oldest_age", "publish_rate", "ack_rate", "alerts",
    }  # fmt: skip
    assert by_group["alpha"]["alerts"] == ["no consumers while 1 messages wait"]


def test_queues_on_an_empty_broker(db_url: str) -> None:
    result = cli("queues", "--url", db_url)
    assert result.exit_code == 0
    assert "no groups" in result.stdout
    assert json.loads(cli("queues", "--json", "--url", db_url).stdout) == []


# -- replay ------------------------------------------------------------------------------


def test_replay_rejects_a_bad_time(db_url: str) -> None:
    result = cli("replay", "alpha", "--since", "yesterday-ish", "--url", db_url)
    assert result.exit_code == 2
    assert "yesterday-ish" in result.stderr


def test_replay_of_an_unknown_group_is_an_error(db_url: str) -> None:
    result = cli("replay", "nope", "--since", "1h", "--url", db_url)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "nope" in result.stderr


def test_replay_puts_retained_events_back(db_url: str) -> None:
    # Given a group whose events were consumed long ago... here: two events waiting
    declare(db_url, "alpha")
    for _ in range(2):
        assert cli("publish", "test.one", "--url", db_url).exit_code == 0

    # When the group is replayed from the last hour
    result = cli("replay", "alpha", "--since", "1h", "--url", db_url)

    # Then both retained events are delivered again
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("replayed 2 event(s) to alpha")
    assert group_stats(db_url)["alpha"]["ready"] == 4


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("tidings ")


def test_queues_watch_refreshes_until_ctrl_c(db_url: str, tmp_path: Path) -> None:
    # Given a group, and `queues --watch` running
    declare(db_url, "alpha")
    log = tmp_path / "watch.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidings", "queues", "--watch", "--json", "--interval", "0.1",
             "--url", db_url],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            # When it has refreshed a few times, with an event published in between
            wait_for(lambda: len(log.read_text().splitlines()) >= 2, what="two refreshes")
            assert cli("publish", "test.one", "--url", db_url).exit_code == 0
            wait_for(
                lambda: any(json.loads(x)[0]["ready"] == 1 for x in log.read_text().splitlines()),
                what="a refresh showing the event",
            )
            # Then Ctrl-C ends it quietly with status 0
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Traceback" not in log.read_text()


def test_log_options_are_accepted_after_the_subcommand_too() -> None:
    from tidings._cli.app import hoist_global_options

    assert hoist_global_options(["run", "app:bus", "--log-level", "debug", "--group", "g"]) == [
        "--log-level",
        "debug",
        "run",
        "app:bus",
        "--group",
        "g",
    ]
    assert hoist_global_options(["queues", "--log-format=json", "--json"]) == [
        "--log-format=json",
        "queues",
        "--json",
    ]
