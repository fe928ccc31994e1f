"""RabbitMQ: tidings against raw aio-pika and FastStream, throughput and latency, and
against amqplib on Node.js (throughput); the contenders and their fairness rules are in
`_rabbitmq_clients` and `_amqplib`."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

from ._amqplib import Amqplib, install
from ._charts import Line, bars, ratio
from ._lab import Lab
from ._measure import PERCENTILES, Spread, latency_ms, rotation
from ._rabbitmq_clients import CONTENDERS, KINDS, PREFETCH, Contender, PythonContender
from ._report import Chart, Results, Scenario, Target, number, table
from ._workers import Workers

MODES = ("publish", "consume")
TIMINGS = ("end_to_end", "confirm")
THROUGHPUT = (*CONTENDERS, "amqplib")  # amqplib (Node.js) has no fixed-rate latency run
CLASSES: dict[str, type[Contender]] = {**KINDS, "amqplib": Amqplib}
GOALS = {"aio-pika": 1.3, "faststream": 1.5}  # tidings / contender, publish and consume
TARGET_NAMES = {"aio-pika": "raw aio-pika", "faststream": "FastStream", "amqplib": "amqplib"}

ABOUT = f"""\
Every contender publishes persistent messages of about 1 KiB of JSON with publisher confirms
and `mandatory`, {PREFETCH} publishes in flight, to a durable topic exchange bound to one
durable classic queue, and consumes them with prefetch {PREFETCH}, acknowledging each after
a no-op handler; each encodes and decodes the JSON of every message (tidings: its CloudEvents
envelope and a pydantic event; aio-pika: `json.dumps`/`json.loads` of the same shape;
FastStream: a dict published, a pydantic model consumed). Publish throughput runs from the
first publish to the last confirm; consume throughput from the first message handled to the
last, on the queue the publish phase filled. The details are in
`benchmarks/_rabbitmq_clients.py`. amqplib on Node.js does the same from a `node`
subprocess (`benchmarks/node/amqp.js`, JSON.stringify and JSON.parse of the same shape),
throughput only: the ceiling of one client process on this broker when the client is not
Python.

**Latency at a fixed rate.** Each contender publishes one message at a time at a fixed rate,
never waiting for the previous confirm, to its own consumer running in another process
(`python -m benchmarks.consumer`, prefetch {PREFETCH}); end to end is from the publish call
to the handler, confirm from the publish call to its return. The publisher, the consumer and
the broker share the machine's cores: where a rate comes close to what a contender can
handle there, messages queue and its latency grows during the run (see the max).
"""


def _timeout(count: int) -> float:
    return max(60.0, count / 100)


async def throughput(contender: Contender, count: int) -> tuple[float, float]:
    """(publish, consume) messages/s of one contender; its topology is deleted after."""
    try:
        published = await contender.publish(count)
        consumed = await contender.consume(count, _timeout(count))
    finally:
        await contender.cleanup()
    return published, consumed


def fixed_rate_latency(
    kind: str, contender: PythonContender, rate: float, count: int
) -> dict[str, Any]:
    """p50/p95/p99/max in ms of publish-to-handler (`end_to_end`) and publish-to-confirm
    (`confirm`) at a fixed rate, the consumer in its own process; deletes the topology."""
    argv = [sys.executable, "-m", "benchmarks.consumer", kind, contender.url, contender.name]
    argv += [contender.management_url] if contender.management_url else []
    try:
        with Workers(argv) as consumer:
            confirms = asyncio.run(contender.publish_at_rate(rate, count))
            handled = consumer.wait(count, _timeout(count))
    finally:
        asyncio.run(contender.cleanup())
    return {"end_to_end": latency_ms(handled.latencies), "confirm": latency_ms(confirms)}


def run(lab: Lab) -> Results:
    node = lab.rabbitmq()
    sizes = lab.sizes
    rates = {f"{rate:g}": rate for rate in sizes.amqp_rates}
    install()
    results: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in THROUGHPUT}
    latency: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = {
        r: {k: {t: {p: [] for p in PERCENTILES} for t in TIMINGS} for k in CONTENDERS}
        for r in rates
    }
    run_id = uuid.uuid4().hex[:8]
    for round_no in range(lab.rounds):
        for kind in rotation(THROUGHPUT, round_no):
            lab.settle()
            name = f"bench-{run_id}-{round_no}-{kind}"
            contender = CLASSES[kind](node.url, name, node.management_url)
            published, consumed = asyncio.run(throughput(contender, sizes.amqp_messages))
            results[kind]["publish"].append(published)
            results[kind]["consume"].append(consumed)
            p99 = []
            for key, rate in rates.items() if kind in KINDS else ():
                count = int(rate * sizes.amqp_rate_seconds)
                lab.settle()
                contender = KINDS[kind](node.url, f"{name}-{key}", node.management_url)
                measured = fixed_rate_latency(kind, contender, rate, count)
                for timing, values in measured.items():
                    for p, value in values.items():
                        latency[key][kind][timing][p].append(value)
                p99.append(f"{measured['end_to_end']['p99']:.1f} ms at {key}/s")
            print(
                f"  rabbitmq round {round_no + 1} {contender.label:<17} publish "
                f"{published:>7,.0f}/s  consume {consumed:>7,.0f}/s  p99 end to end "
                + (", ".join(p99) or "not measured"),
                flush=True,
            )
    return {
        "settings": {
            "messages": sizes.amqp_messages,
            "in_flight": PREFETCH,
            "prefetch": PREFETCH,
            "rates": list(rates),
            "rate_seconds": sizes.amqp_rate_seconds,
        },
        "throughput": results,
        "latency": latency,
    }


def _shown(data: Results) -> list[str]:
    """The throughput contenders in `data` (results of earlier runs have no amqplib)."""
    return [k for k in THROUGHPUT if k in data["throughput"]]


def _median(data: Results, kind: str, mode: str) -> float:
    return Spread.of(data["throughput"][kind][mode]).median


def _ratio(data: Results, mode: str, other: str) -> float:
    theirs = _median(data, other, mode)
    return _median(data, "tidings", mode) / theirs if theirs else float("nan")


def _goal(kind: str) -> str:
    return f">= {GOALS[kind]:g}x" if kind in GOALS else ""


def render(data: Results) -> str:
    s = data["settings"]
    rows = []
    for kind in _shown(data):
        spreads = [Spread.of(data["throughput"][kind][m]) for m in MODES]
        ratios = [f"{number(_ratio(data, m, kind), 2)}x" for m in MODES]
        rows.append((CLASSES[kind].label, *(x.text() for x in spreads), *ratios, _goal(kind)))
    latency_rows = [
        (
            KINDS[kind].label,
            f"{float(rate):,.0f}/s",
            timing.replace("_", " "),
            *(Spread.of(data["latency"][rate][kind][timing][p]).text(2) for p in PERCENTILES),
        )
        for kind in CONTENDERS
        for rate in s["rates"]
        for timing in TIMINGS
    ]
    header = ("contender", "publish msg/s", "consume msg/s", "tidings / this, publish")
    return (
        f"{ABOUT}\n"
        f"Throughput, {s['messages']:,} messages per contender and round; the ratios are "
        "tidings' median over the contender's, with the goal for both:\n\n"
        + table((*header, "tidings / this, consume", "goal"), rows)
        + f"\n\nLatency at fixed rates, {s['rate_seconds']:g} s each, milliseconds:\n\n"
        + table(("contender", "rate", "timed", "p50", "p95", "p99", "max"), latency_rows, right=3)
        + "\n"
    )


def charts(data: Results, out: Path) -> list[Chart]:
    shown = _shown(data)
    bars(
        out / "rabbitmq-throughput.png",
        title="RabbitMQ: messages/s, persistent, confirmed (median, min-max)",
        ylabel="messages/s",
        groups=[CLASSES[k].label for k in shown],
        series={m: [Spread.of(data["throughput"][k][m]) for k in shown] for m in MODES},
    )
    labels = [KINDS[k].label for k in CONTENDERS]
    others = [k for k in shown if k != "tidings"]
    bars(
        out / "rabbitmq-ratios.png",
        title="RabbitMQ: tidings over each contender (ratio of medians)",
        ylabel="tidings / contender",
        groups=[f"tidings /\n{CLASSES[k].label}" for k in others],
        series={
            m: [ratio(data["throughput"]["tidings"][m], data["throughput"][k][m]) for k in others]
            for m in MODES
        },
        lines=[Line(goal, f"target: >= {goal:g}x {TARGET_NAMES[k]}") for k, goal in GOALS.items()],
    )
    made = [
        Chart("rabbitmq-throughput.png", "RabbitMQ throughput"),
        Chart("rabbitmq-ratios.png", "RabbitMQ ratios"),
    ]
    for rate in data["settings"]["rates"]:
        name = f"rabbitmq-latency-{rate}.png"
        bars(
            out / name,
            title=f"RabbitMQ: publish-to-handler latency at {float(rate):,.0f} messages/s",
            ylabel="milliseconds (log scale)",
            groups=labels,
            series={
                p: [Spread.of(data["latency"][rate][k]["end_to_end"][p]) for k in CONTENDERS]
                for p in ("p50", "p95", "p99")
            },
            log=True,
        )
        made.append(Chart(name, f"RabbitMQ latency at {rate}/s"))
    return made


def targets(data: Results) -> list[Target]:
    found = []
    for kind in ("aio-pika", "faststream", "amqplib"):
        if kind not in data["throughput"]:
            continue
        for mode in MODES:
            value = _ratio(data, mode, kind)
            goal = GOALS.get(kind)
            found.append(
                Target(
                    f"RabbitMQ {mode}, tidings / {TARGET_NAMES[kind]}",
                    f">= {goal:.2f}x" if goal else "(the client-side ceiling)",
                    f"{number(value, 2)}x",
                    None if goal is None else value >= goal,
                )
            )
    return found


SCENARIO = Scenario(
    "rabbitmq",
    "RabbitMQ: tidings, aio-pika, FastStream and amqplib (Node.js)",
    run,
    render,
    charts,
    targets,
)
