"""Acceptance: several publisher and worker processes on one embedded-broker file."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.support import wait_for

from .conftest import Apps

pytestmark = pytest.mark.slow

PER_PUBLISHER = 300


def read_lines(out: Path, prefix: str) -> list[list[str]]:
    lines: list[list[str]] = []
    for path in sorted(out.glob(f"{prefix}*.log")):
        lines += [line.split() for line in path.read_text().splitlines() if line.strip()]
    return lines


def test_fan_out_survives_sigkill_and_dedupes_completed_redeliveries(apps: Apps) -> None:
    out = apps.out
    # Given one killer worker in group A and one worker in group B
    killer = apps.start("worker.py", "A", KILLER="1")
    worker_b = apps.start("worker.py", "B")
    wait_for(lambda: len(list(out.glob("ready-*"))) == 2, what="first workers ready")

    # When two publishers publish while the killer is SIGKILLed mid-stream
    pubs = [apps.start("publisher.py", str(i * 1000), str(PER_PUBLISHER)) for i in range(2)]
    wait_for(lambda: (out / "blocked").exists(), what="event 5 blocked in the killer")
    worker_a2 = apps.start("worker.py", "A")
    killer.expect_exit(-signal.SIGKILL, 30)
    for pub in pubs:
        pub.expect_exit(0, 60)

    published = dict(line for line in read_lines(out, "published-"))  # n -> id
    assert len(published) == 2 * PER_PUBLISHER

    def done(tag: str) -> Counter[str]:
        return Counter(event_id for _, t, event_id in read_lines(out, "worker-") if t == tag)

    wait_for(
        lambda: set(published.values()) <= set(done("A-done")) | set(),
        timeout=60,
        what="every confirmed event handled by group A",
    )
    wait_for(
        lambda: set(published.values()) <= set(done("B-done")),
        timeout=60,
        what="every confirmed event handled by group B",
    )
    worker_a2.signal(signal.SIGTERM)
    worker_b.signal(signal.SIGTERM)
    worker_a2.expect_exit(0, 30)
    worker_b.expect_exit(0, 30)

    # Then every confirmed event reached group A and group B
    lines = read_lines(out, "worker-")
    a_done, b_done = done("A-done"), done("B-done")
    assert set(a_done) == set(b_done) == set(published.values())
    # B was never disturbed: exactly once each
    assert set(b_done.values()) == {1}
    # event 5 was in the killer's handler when it died; it came back and was finished by A2
    killer_pid, a2_pid = str(killer.pid), str(worker_a2.pid)
    blocked = published["5"]
    assert [pid for pid, tag, i in lines if i == blocked and tag == "A-done"] == [a2_pid]
    assert [pid for pid, tag, i in lines if i == blocked and tag == "A-start"][0] == killer_pid
    # event 7 completed in the killer, which died before acking it: the redelivery to A2 was
    # recognised by the dedupe marker and its handler did not run again
    seven = published["7"]
    assert [(pid, tag) for pid, tag, i in lines if i == seven and tag.startswith("A")] == [
        (killer_pid, "A-start"),
        (killer_pid, "A-done"),
    ]
