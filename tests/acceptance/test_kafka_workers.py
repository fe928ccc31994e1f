"""Acceptance on Kafka: three worker processes in one ordered, idempotent group over six
partitions; one is SIGKILLed mid-stream and its partitions move to the others."""

from __future__ import annotations

import signal
import sys
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from tests.kafka_server import TansuBroker, delete_topics, kafka_broker  # noqa: F401
from tests.servers import redis_server  # noqa: F401
from tests.support import Children
from tidings.contract import eventually

APPS = Path(__file__).parent / "kafka_apps"
sys.path.insert(0, str(APPS))

from kafka_ledger import Entry, make_bus  # noqa: E402

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KEYS = [f"k{n}" for n in range(12)]
PER_KEY = 30
KILL_AFTER = 25


def lines(out: Path) -> list[tuple[float, int, str, int, str]]:
    rows = []
    for path in out.glob("worker-*.log"):
        for line in path.read_text().splitlines():
            at, pid, key, n, event_id = line.split()
            rows.append((float(at), int(pid), key, int(n), event_id))
    return sorted(rows)


async def test_a_killed_workers_partitions_move_and_nothing_is_lost_or_reordered(
    children: Children,
    tmp_path: Path,
    kafka_broker: TansuBroker,  # noqa: F811
    redis_server,  # noqa: F811
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    name = f"t{uuid.uuid4().hex[:12]}"
    env = {
        "TIDINGS_URL": kafka_broker.url,
        "BUS_NAME": name,
        "REDIS_URL": redis_server.url,
        "OUT_DIR": str(out),
    }
    script = str(APPS / "kafka_ledger.py")
    try:
        # Given three workers of one group, one of which will be SIGKILLed
        killer = children.start("python", script, KILL_AFTER=str(KILL_AFTER), **env)
        workers = [children.start("python", script, **env) for _ in range(2)]
        await eventually(lambda: len(list(out.glob("ready-*"))) == 3, 60, "three workers")
        # When events of twelve keys are published, in order per key
        publisher = make_bus(kafka_broker.url, name, redis_server.url, consume=False)
        published: dict[str, tuple[str, int]] = {}
        async with publisher:
            for n in range(PER_KEY):
                for key in KEYS:
                    event_id = await publisher.publish(Entry(key=key, n=n), key=key)
                    published[event_id] = (key, n)
        killer.expect_exit(-signal.SIGKILL, 60)
        await eventually(
            lambda: {row[4] for row in lines(out)} >= set(published), 90, "every event handled"
        )
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            worker.expect_exit(0, 30)
    finally:
        await delete_topics(kafka_broker, name)
    rows = lines(out)
    # Then every event was handled once (the group is idempotent), none lost
    handled = [event_id for *_, event_id in rows]
    assert sorted(handled) == sorted(published)
    # And each key's events were handled in publish order, across the rebalance
    by_key: dict[str, list[int]] = defaultdict(list)
    for _, _, key, n, _ in rows:
        by_key[key].append(n)
    assert by_key == {key: list(range(PER_KEY)) for key in KEYS}
    # And the killed worker's keys went on in the other workers after it died
    died = max(at for at, pid, *_ in rows if pid == killer.pid)
    killed_keys = {key for _, pid, key, _, _ in rows if pid == killer.pid}
    assert len([r for r in rows if r[1] == killer.pid]) == KILL_AFTER
    later = {key for at, pid, key, _, _ in rows if at > died and pid != killer.pid}
    assert killed_keys and killed_keys <= later
