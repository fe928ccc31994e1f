"""`tidings run`: workers in real subprocesses, fed by `tidings publish`."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.support import wait_for

from .conftest import Workers, cli, group_stats, stop

pytestmark = pytest.mark.slow


def test_run_handles_what_publish_sends(workers: Workers, db_url: str, out: Path) -> None:
    # Given a worker running every group of the app
    worker = workers.run()

    # When an event is published from the command line
    result = cli("publish", "test.ping", "--data", '{"n": 1}', "--url", db_url)

    # Then the CLI prints its id, and both groups subscribed to it handle it
    assert result.exit_code == 0, result.output
    event_id = result.stdout.strip()
    record = wait_for(lambda: _read_json(out / "pinger-1.json"), what="pinger handled")
    assert record["id"] == event_id
    assert record["replayed"] is False
    wait_for(lambda: (out / "echo-1").exists(), what="echo handled")
    stop(worker)
    assert "worker started" in worker.log
    assert "pinger" in worker.log and db_url in worker.log
    assert "worker stopped" in worker.log


def test_publish_round_trips_raw_data_key_and_id(workers: Workers, db_url: str, out: Path) -> None:
    # Given a worker whose handler records the raw data it receives
    workers.run(consumers={"recorder": 1})
    data = {"order_id": "o-1", "total": 12.5, "lines": [{"sku": "a", "qty": 2}], "type": "x"}

    # When the data is published with a key and an id of our choosing
    result = cli(
        "publish", "test.record", "--data", json.dumps(data), "--key", "user-7",
        "--id", "evt-42", "--url", db_url,
    )  # fmt: skip

    # Then the handler gets exactly that data, key and id
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "evt-42"
    record = wait_for(lambda: _read_json(out / "record-evt-42.json"), what="recorded")
    assert record == {"data": data, "id": "evt-42", "key": "user-7", "type": "test.record"}


def test_run_only_the_groups_asked_for(workers: Workers, db_url: str, out: Path) -> None:
    # Given a worker running only the pinger group
    worker = workers.run("--group", "pinger", consumers={"pinger": 1})

    # When an event both pinger and echo subscribe to is published
    assert cli("publish", "test.ping", "-d", '{"n": 2}', "--url", db_url).exit_code == 0

    # Then pinger handles it, while echo's copy waits for a consumer
    wait_for(lambda: (out / "pinger-2.json").exists(), what="pinger handled")
    stats = group_stats(db_url)
    assert stats["echo"]["consumers"] == 0
    assert stats["echo"]["ready"] == 1
    assert not (out / "echo-2").exists()
    stop(worker)


def test_url_overrides_the_bus_url(workers: Workers, db_url: str, tmp_path: Path) -> None:
    # Given an app whose bus would use another broker file
    other = f"sqlite:///{tmp_path / 'other.db'}"

    # When it runs with --url
    worker = workers.run("--url", db_url, env={"TIDINGS_URL": other}, consumers={"pinger": 1})

    # Then its consumers are on the URL given (`run` waited for them there)
    assert f"on {db_url}" in worker.log
    assert not (tmp_path / "other.db").exists()
    stop(worker)


def test_sigterm_lets_the_in_flight_handler_finish(
    workers: Workers, db_url: str, out: Path
) -> None:
    # Given a worker busy with a slow handler
    worker = workers.run("--drain-timeout", "20", consumers={"slow": 1})
    assert cli("publish", "test.slow", "-d", '{"seconds": 1.0}', "--url", db_url).exit_code == 0
    wait_for(lambda: (out / "slow-started").exists(), what="the slow handler to start")
    assert not (out / "slow-finished").exists()

    # When it is asked to stop
    stopped_at = time.monotonic()
    worker.signal(signal.SIGTERM)

    # Then the handler finishes, and the worker exits 0 well within the drain timeout
    worker.expect_exit(0, 20)
    assert time.monotonic() - stopped_at < 15
    assert (out / "slow-finished").exists()
    assert "SIGTERM received" in worker.log
    # and the event was acknowledged, not returned to the group
    assert group_stats(db_url)["slow"]["ready"] == 0


def test_drain_timeout_bounds_the_shutdown(workers: Workers, db_url: str, out: Path) -> None:
    # Given a worker whose handler would run for a minute
    worker = workers.run("--drain-timeout", "0.5", consumers={"slow": 1})
    assert cli("publish", "test.slow", "-d", '{"seconds": 60}', "--url", db_url).exit_code == 0
    wait_for(lambda: (out / "slow-started").exists(), what="the slow handler to start")

    # When it is asked to stop with SIGINT (Ctrl-C)
    worker.signal(signal.SIGINT)

    # Then it gives up on the handler after the drain timeout and exits 1
    worker.expect_exit(1, 20)
    assert not (out / "slow-finished").exists()
    assert "1 handler(s) still running after the drain timeout of 0.5s" in worker.log


def test_processes_runs_several_workers(workers: Workers, db_url: str, out: Path) -> None:
    # Given two worker processes under one supervisor
    supervisor = workers.run("--processes", "2", consumers={"pinger": 2, "echo": 2})

    # When events are published
    for n in range(6):
        assert (
            cli("publish", "test.ping", "-d", json.dumps({"n": n}), "--url", db_url).exit_code == 0
        )

    # Then they are all handled, by child processes, and SIGTERM stops every worker with 0
    records = [wait_for(lambda n=n: _read_json(out / f"pinger-{n}.json")) for n in range(6)]
    assert supervisor.pid not in {r["pid"] for r in records}
    stop(supervisor)
    assert supervisor.log.count("worker stopped") == 2
    assert "all 2 worker processes stopped" in supervisor.log
    assert group_stats(db_url)["pinger"]["consumers"] == 0


def test_a_failing_child_fails_the_supervisor(workers: Workers) -> None:
    # Given children that cannot start (the broker file is in a missing directory)
    bad = "sqlite:////nonexistent-dir/tidings/bus.db"
    supervisor = workers.start("run", "app:bus", "--processes", "2", "--url", bad)

    # Then the supervisor exits 1
    supervisor.expect_exit(1, 30)
    assert "error:" in supervisor.log


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchmodule:bus", "cannot import module 'nosuchmodule'"),
        ("app:nothere", "module 'app' has no attribute 'nothere'"),
        ("app:OUT", "app:OUT is a PosixPath, not a tidings.Bus"),
        ("/nonexistent-dir/worker.py:bus", "cannot import /nonexistent-dir/worker.py: no such"),
    ],
)
def test_run_reports_a_bad_target_in_one_line(workers: Workers, target: str, message: str) -> None:
    worker = workers.start("run", target)
    worker.expect_exit(1, 30)
    lines = worker.log.strip().splitlines()
    assert lines == [f"error: {message}"] or (
        len(lines) == 1 and lines[0].startswith(f"error: {message}")
    ), worker.log


def test_run_refuses_an_unknown_group(workers: Workers) -> None:
    worker = workers.start("run", "app:bus", "--group", "nope")
    worker.expect_exit(1, 30)
    assert worker.log.strip().startswith("error: no group named 'nope'")
    assert "Traceback" not in worker.log


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
