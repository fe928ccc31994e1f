"""`tidings run --processes N` stopping: however the stop signal arrives (to the process
group, to the supervisor only, to every process as systemd does), each worker drains once;
exit 0 after a full drain, 1 when the drain timed out or a second signal forced the stop.

The service runs in a session of its own, so signalling its process group spares the test
runner.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.support import Child, wait_for

from .conftest import Workers, cli

pytestmark = pytest.mark.slow


def start_service(workers: Workers, *args: str) -> tuple[Child, list[int]]:
    """`tidings run app:bus --processes 2 --group napper ARGS` in a session of its own, once
    both workers consume; the supervisor and its workers' pids."""
    service = workers.start_in_session(
        "run", "app:bus", "--processes", "2", "--group", "napper", *args
    )
    workers.wait_for_consumers(service, {"napper": 2})
    found = re.search(r"started 2 worker processes \(pids (\d+), (\d+)\)", service.log)
    assert found, service.log
    return service, [int(found[1]), int(found[2])]


def nap(url: str, out: Path, *naps: tuple[int, float]) -> None:
    """Publish a nap of `seconds` for each `(n, seconds)` and wait until all have started."""
    for n, seconds in naps:
        data = json.dumps({"n": n, "seconds": seconds})
        assert cli("publish", "test.nap", "-d", data, "--url", url).exit_code == 0
    for n, _ in naps:
        wait_for(lambda n=n: (out / f"nap-{n}-started").exists(), what=f"nap {n} to start")


def send(service: Child, pids: list[int], how: str, sig: signal.Signals) -> None:
    """Send `sig` the way `how` says: to the service's process group, to the supervisor
    only, or to every process of the service (systemd's control-group kill)."""
    if how == "group":
        os.killpg(service.pid, sig)
    elif how == "parent":
        service.signal(sig)
    else:
        for pid in [service.pid, *pids]:
            os.kill(pid, sig)


@pytest.mark.parametrize(
    ("how", "sig"),
    [
        ("group", signal.SIGTERM),
        ("parent", signal.SIGINT),
        ("every", signal.SIGTERM),
        ("every", signal.SIGINT),
    ],
)
def test_each_worker_drains_once_and_the_service_exits_0(
    workers: Workers, db_url: str, out: Path, how: str, sig: signal.Signals
) -> None:
    # Given two worker processes, with handlers in the middle of a 1.5 s sleep
    service, pids = start_service(workers, "--drain-timeout", "20")
    nap(db_url, out, (1, 1.5), (2, 1.5))
    assert not list(out.glob("nap-*-finished"))

    # When the stop signal arrives
    send(service, pids, how, sig)

    # Then every handler finishes, each worker drains once, and the service exits 0
    service.expect_exit(0, 20)
    assert (out / "nap-1-finished").exists() and (out / "nap-2-finished").exists()
    assert service.log.count("finishing in-flight handlers") == 2, service.log
    assert service.log.count("worker stopped (pid") == 2, service.log
    assert "cancelling" not in service.log and "Traceback" not in service.log
    assert "all 2 worker processes stopped" in service.log


def test_a_drain_that_times_out_exits_1(workers: Workers, db_url: str, out: Path) -> None:
    # Given a handler that would sleep for a minute, and a drain timeout of half a second
    service, pids = start_service(workers, "--drain-timeout", "0.5")
    nap(db_url, out, (1, 60))

    # When SIGTERM reaches the whole process group
    send(service, pids, "group", signal.SIGTERM)

    # Then the service gives up on the handler after the drain timeout and exits 1
    service.expect_exit(1, 20)
    assert not (out / "nap-1-finished").exists()
    assert "still running after the drain timeout of 0.5s were cancelled" in service.log


def test_a_second_signal_stops_at_once(workers: Workers, db_url: str, out: Path) -> None:
    # Given a handler that would sleep for a minute, well within the drain timeout
    service, pids = start_service(workers, "--drain-timeout", "60")
    nap(db_url, out, (1, 60))

    # When SIGTERM reaches every process, and then again
    send(service, pids, "every", signal.SIGTERM)

    # (the supervisor too has taken the first one: two SIGTERMs pending at once are one)
    def draining() -> bool:
        log = service.log
        return log.count("finishing in-flight handlers") == 2 and "stopping 2 worker" in log

    wait_for(draining, what="draining")
    stopped_at = time.monotonic()
    send(service, pids, "every", signal.SIGTERM)

    # Then the workers cancel the handler and the service exits 1 at once
    service.expect_exit(1, 20)
    assert time.monotonic() - stopped_at < 10
    assert "stopping the worker processes at once" in service.log
    assert "worker stopped by force" in service.log
    assert not (out / "nap-1-finished").exists()


def test_one_worker_stops_at_once_on_a_second_signal(
    workers: Workers, db_url: str, out: Path
) -> None:
    # Given a single worker process with a handler that would sleep for a minute
    worker = workers.start_in_session("run", "app:bus", "--group", "napper")
    workers.wait_for_consumers(worker, {"napper": 1})
    nap(db_url, out, (1, 60))

    # When SIGINT reaches its process group twice (Ctrl-C, Ctrl-C)
    os.killpg(worker.pid, signal.SIGINT)
    wait_for(lambda: "finishing in-flight handlers" in worker.log, what="draining")
    os.killpg(worker.pid, signal.SIGINT)

    # Then it cancels the handler and exits 1
    worker.expect_exit(1, 20)
    assert "SIGINT received again: cancelling the handlers still running" in worker.log
    assert not (out / "nap-1-finished").exists()
