"""`tidings run --metrics-port`: a real worker (and a supervisor of two) serving /metrics,
scraped after successes, a retry and a dead letter."""

from __future__ import annotations

import asyncio
import re
import textwrap
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support import Child, Children, wait_for
from tidings import Bus, Event

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os

    from tidings import Bus, Context, Event, Retry
    from tidings.observability import Prometheus

    # TIDINGS_URL; with APP_METRICS=1 the application counts with Prometheus() itself
    bus = Bus(middleware=[Prometheus()] if os.environ.get("APP_METRICS") else [])


    class CardDeclined(Exception):
        pass


    class Tick(Event, type="test.tick"):
        n: int


    class Tock(Event, type="test.tock"):
        n: int


    @bus.subscribe("test.tick", group="ok")
    async def ok(event: Tick, ctx: Context) -> None:
        await ctx.publish(Tock(n=event.n))


    @bus.subscribe("test.tock", group="flaky", retry=Retry(attempts=3, base=0.01))
    async def flaky(event: Tock, ctx: Context) -> None:
        if ctx.attempt == 1:
            raise ConnectionError("try again")


    @bus.subscribe("test.tick", group="doomed", retry=Retry(attempts=1))
    async def doomed(event: Tick) -> None:
        raise CardDeclined("insufficient funds")
    """
)

GROUPS = ("ok", "flaky", "doomed")
GROUP_GAUGES = (
    "tidings_group_ready",
    "tidings_group_in_flight",
    "tidings_group_scheduled",
    "tidings_group_dead",
    "tidings_group_consumers",
    "tidings_group_oldest_age_seconds",
)
BOUNDED_LABELS = {"event_type", "status", "group", "outcome", "error_type", "saga_type", "le"}


class Tick(Event, type="test.tick"):
    n: int


def publish_ticks(url: str, count: int) -> None:
    async def go() -> None:
        async with Bus(url, consume=False) as bus:
            for n in range(count):
                await bus.publish(Tick(n=n))

    asyncio.run(go())


def start_worker(
    children: Children, tmp_path: Path, *args: str, **env: str
) -> tuple[Child, str, str]:
    """`tidings run app:bus --metrics-port 0 ARGS`, started; its broker and metrics URLs."""
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "tmp").mkdir()
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    worker = children.tidings(
        "run", "app:bus", "--metrics-port", "0", "--metrics-host", "127.0.0.1",
        "--metrics-interval", "0.2", *args,
        cwd=tmp_path, TIDINGS_URL=url, TMPDIR=str(tmp_path / "tmp"), **env,
    )  # fmt: skip
    processes = int(args[args.index("--processes") + 1]) if "--processes" in args else 1

    def started() -> re.Match[str] | None:
        assert worker.proc.poll() is None, worker.log
        if worker.log.count("worker started") < processes:
            return None
        return re.search(r"serving metrics on (http://127\.0\.0\.1:\d+/metrics)", worker.log)

    found = wait_for(started, what="the worker to start and serve its metrics")
    return worker, url, found[1]


def scrape(metrics_url: str) -> dict[str, list[Sample]]:
    """Every sample of /metrics by metric family, and families declared without any."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def sample(families: dict[str, list[Sample]], name: str, **labels: str) -> float | None:
    family = name.removesuffix("_total").removesuffix("_count")
    for s in families.get(family, []):
        if s.name == name and s.labels == labels:
            return s.value
    return None


def all_labels(families: dict[str, list[Sample]]) -> Iterable[str]:
    for name, samples in families.items():
        if name.startswith("tidings_"):
            for s in samples:
                yield from s.labels


def settled(families: dict[str, list[Sample]], dead: float, handled: float) -> bool:
    return (
        sample(families, "tidings_group_dead", group="doomed") == dead
        and sample(
            families, "tidings_event_processing_duration_seconds_count",
            group="flaky", event_type="test.tock", outcome="ack",
        ) == handled
    )  # fmt: skip


def test_a_worker_serves_every_documented_metric(children: Children, tmp_path: Path) -> None:
    # Given a worker serving its metrics, whose application has a Prometheus() of its own
    # (counted once: the worker adds none)
    worker, url, metrics_url = start_worker(children, tmp_path, APP_METRICS="1")

    # When an event is handled by one group, retried once by another (which got it from
    # the first handler's ctx.publish) and dead-lettered by a third
    publish_ticks(url, 1)
    families = wait_for(
        lambda: (f := scrape(metrics_url)) and settled(f, dead=1, handled=1) and f,
        what="the events to be processed and the gauges read",
    )

    # Then publishing, processing by outcome, lag and the dead letter are there, labelled
    published = {"event_type": "test.tock", "status": "success"}
    assert sample(families, "tidings_events_published_total", **published) == 1
    duration = "tidings_event_processing_duration_seconds_count"
    assert sample(families, duration, group="ok", event_type="test.tick", outcome="ack") == 1
    assert sample(families, duration, group="flaky", event_type="test.tock", outcome="retry") == 1
    assert sample(families, duration, group="flaky", event_type="test.tock", outcome="ack") == 1
    doomed = {"group": "doomed", "event_type": "test.tick"}
    assert sample(families, duration, **doomed, outcome="dead_letter") == 1
    for group in GROUPS:
        assert sample(families, "tidings_event_consumer_lag_seconds_count", group=group) == 1
    dlq = "tidings_dlq_events_total"
    assert sample(families, dlq, **doomed, error_type="CardDeclined") == 1

    # and the group gauges, one per group
    for gauge in GROUP_GAUGES:
        assert {s.labels["group"] for s in families[gauge]} == set(GROUPS), gauge
    assert sample(families, "tidings_group_consumers", group="ok") == 1

    # and the saga metrics are declared for the sagas to come, and the outbox gauges
    # without a value (this bus has no outbox)
    assert "tidings_saga_completions" in families
    assert "tidings_saga_duration_seconds" in families
    assert families["tidings_outbox_pending"] == []
    assert families["tidings_outbox_oldest_age_seconds"] == []

    # and no label is unbounded (no event id)
    assert set(all_labels(families)) <= BOUNDED_LABELS
    worker.signal()
    worker.expect_exit(0)


def test_a_supervisor_serves_its_workers_metrics_together(
    children: Children, tmp_path: Path
) -> None:
    # Given a supervisor of two workers serving their metrics
    worker, url, metrics_url = start_worker(children, tmp_path, "--processes", "2")

    # When events are handled by both workers
    publish_ticks(url, 6)
    families = wait_for(
        lambda: (f := scrape(metrics_url)) and settled(f, dead=6, handled=6) and f,
        what="the events to be processed and the gauges read",
    )

    # Then the counts add up over the workers
    duration = "tidings_event_processing_duration_seconds_count"
    assert sample(families, duration, group="ok", event_type="test.tick", outcome="ack") == 6
    dlq = {"group": "doomed", "event_type": "test.tick", "error_type": "CardDeclined"}
    assert sample(families, "tidings_dlq_events_total", **dlq) == 6
    published = {"event_type": "test.tock", "status": "success"}
    assert sample(families, "tidings_events_published_total", **published) == 6

    # and the gauges read from the broker are counted once, not once per worker
    assert sample(families, "tidings_group_consumers", group="ok") == 2
    assert sample(families, "tidings_group_dead", group="doomed") == 6
    for gauge in GROUP_GAUGES:
        assert len(families[gauge]) == len(GROUPS), families[gauge]
    assert "tidings_saga_completions" in families
    assert families["tidings_outbox_pending"] == []
    assert set(all_labels(families)) <= BOUNDED_LABELS

    # and when it stops, the workers' metric files go with it
    worker.signal()
    worker.expect_exit(0)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_taken_port_is_one_clear_error(children: Children, tmp_path: Path) -> None:
    # Given a worker serving metrics on a port
    worker, url, metrics_url = start_worker(children, tmp_path)
    port = metrics_url.split(":")[-1].removesuffix("/metrics")

    # When another one is asked to serve on the same port
    other = children.tidings(
        "run", "app:bus", "--metrics-port", port, "--metrics-host", "127.0.0.1",
        cwd=tmp_path, TIDINGS_URL=url,
    )  # fmt: skip

    # Then it exits 1 with one line naming the port
    other.expect_exit(1)
    assert f"error: cannot serve metrics on 127.0.0.1:{port}" in other.log
    assert "Traceback" not in other.log
    worker.signal()
    worker.expect_exit(0)
