"""Scaling: end-to-end throughput against the number of worker processes and against the
payload size, on the embedded broker and on RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

from ._charts import bars
from ._lab import Lab
from ._load import WINDOW, end_to_end
from ._measure import Spread, rotation
from ._rabbitmq_clients import Tidings
from ._report import Chart, Results, Scenario, Target, number, table

TRANSPORTS = {"embedded": "embedded broker", "rabbitmq": "RabbitMQ"}

ABOUT = f"""\
The harness publishes in `publish_many` batches of {WINDOW} through a `Bus` while
`tidings run --processes N` handles the events (no-op handler, 256 in flight per process);
events/s count from the first publish to the last event handled, over all the workers. The
publisher shares the machine's cores with the workers and, on RabbitMQ, with the broker.
Worker runs use a payload of 1 KiB; payload runs use one worker process and the payload
given (the `payload` field of the event; the envelope adds about 250 bytes), with a tenth of
the events for 64 KiB.
"""


def _size(payload: int) -> str:
    return f"{payload // 1024} KiB" if payload >= 1024 else f"{payload} B"


Run = Callable[[int, int, int], float]  # (processes, payload, count) -> events/s


def _embedded(lab: Lab) -> Run:
    def one(processes: int, payload: int, count: int) -> float:
        url = lab.sqlite_url("scale")
        return end_to_end(url, count, batched=True, processes=processes, payload_size=payload)

    return one


def _rabbitmq(lab: Lab) -> Run:
    node = lab.rabbitmq()
    run_id = uuid.uuid4().hex[:8]

    def one(processes: int, payload: int, count: int) -> float:
        name = f"bench-{run_id}-scale-{processes}-{payload}"
        try:
            return end_to_end(
                node.url,
                count,
                batched=True,
                processes=processes,
                payload_size=payload,
                name=name,
                management_url=node.management_url,
            )
        finally:
            asyncio.run(Tidings(node.url, name, node.management_url).cleanup())

    return one


def run(lab: Lab) -> Results:
    sizes = lab.sizes
    runs = {"embedded": (_embedded(lab), sizes.scale_events)}
    if lab.use_rabbitmq:
        runs["rabbitmq"] = (_rabbitmq(lab), sizes.scale_amqp_events)
    cases = [(n, 1024) for n in sizes.workers]
    cases += [(1, size) for size in sizes.payloads if size != 1024]
    results: dict[str, dict[str, dict[str, list[float]]]] = {
        transport: {"workers": {}, "payload": {}} for transport in runs
    }
    for round_no in range(lab.rounds):
        for transport, (one, base) in runs.items():
            for processes, payload in rotation(cases, round_no):
                lab.settle()
                value = one(processes, payload, sizes.scale_count(base, payload))
                if payload == 1024:
                    results[transport]["workers"].setdefault(str(processes), []).append(value)
                if processes == 1:
                    results[transport]["payload"].setdefault(str(payload), []).append(value)
                print(
                    f"  scaling round {round_no + 1} {transport} {processes} worker(s) "
                    f"{_size(payload)}: {value:,.0f}/s",
                    flush=True,
                )
    return {
        "settings": {
            "events": {"embedded": sizes.scale_events, "rabbitmq": sizes.scale_amqp_events},
            "workers": list(sizes.workers),
            "payloads": list(sizes.payloads),
            "batch": WINDOW,
        },
        "transports": results,
    }


def _points(data: Results, transport: str, axis: str, keys: list[int]) -> list[Spread]:
    values = data["transports"].get(transport, {}).get(axis, {})
    return [Spread.of(values.get(str(k), [])) for k in keys]


def render(data: Results) -> str:
    s = data["settings"]
    workers, payloads = s["workers"], s["payloads"]
    transports = [t for t in TRANSPORTS if t in data["transports"]]
    worker_rows = [
        (f"{n} worker process{'es' if n > 1 else ''}",)
        + tuple(_points(data, t, "workers", [n])[0].text() for t in transports)
        for n in workers
    ]
    payload_rows = []
    for size in payloads:
        cells = []
        for t in transports:
            spread = _points(data, t, "payload", [size])[0]
            mib = spread.median * (size + 250) / 2**20
            cells.append(f"{spread.text()} ({number(mib, 1)} MiB/s)")
        payload_rows.append((_size(size), *cells))
    names = [f"{TRANSPORTS[t]}, events/s" for t in transports]
    counts = ", ".join(f"{TRANSPORTS[t]} {s['events'][t]:,}" for t in transports)
    return (
        f"{ABOUT}\nEvents per run: {counts}.\n\n"
        + table(("workers (1 KiB)", *names), worker_rows)
        + "\n\n"
        + table(("payload (1 worker)", *names), payload_rows)
        + "\n"
    )


def charts(data: Results, out: Path) -> list[Chart]:
    s = data["settings"]
    transports = [t for t in TRANSPORTS if t in data["transports"]]
    bars(
        out / "scaling-workers.png",
        title="Throughput against worker processes (1 KiB, median, min-max)",
        ylabel="events/s",
        groups=[f"{n} worker{'s' if n > 1 else ''}" for n in s["workers"]],
        series={TRANSPORTS[t]: _points(data, t, "workers", s["workers"]) for t in transports},
    )
    bars(
        out / "scaling-payload.png",
        title="Throughput against payload size (1 worker, median, min-max)",
        ylabel="events/s (log scale)",
        groups=[_size(p) for p in s["payloads"]],
        series={TRANSPORTS[t]: _points(data, t, "payload", s["payloads"]) for t in transports},
        log=True,
    )
    return [
        Chart("scaling-workers.png", "Throughput against worker processes"),
        Chart("scaling-payload.png", "Throughput against payload size"),
    ]


def targets(data: Results) -> list[Target]:
    return []


SCENARIO = Scenario("scaling", "Scaling: workers and payload size", run, render, charts, targets)
