"""RabbitMQ: tidings against raw aio-pika and FastStream, throughput and latency; the
contenders and their fairness rules are in `_rabbitmq_clients`."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

from ._charts import bars
from ._lab import Lab
from ._measure import PERCENTILES, Spread, latency_ms, rotation
from ._rabbitmq_clients import CONTENDERS, KINDS, PREFETCH, Contender
from ._report import Chart, Results, Scenario, Target, number, table
from ._workers import Workers

MODES = ("publish", "consume")
TIMINGS = ("end_to_end", "confirm")
TARGET_VS_RAW = 0.9

ABOUT = f"""\
Every contender publishes persistent messages of about 1 KiB of JSON with publisher confirms
and `mandatory`, {PREFETCH} publishes in flight, to a durable topic exchange bound to one
durable classic queue, and consumes them with prefetch {PREFETCH}, acknowledging each after
a no-op handler; each encodes and decodes the JSON of every message (tidings: its CloudEvents
envelope and a pydantic event; aio-pika: `json.dumps`/`json.loads` of the same shape;
FastStream: a dict published, a pydantic model consumed). Publish throughput runs from the
first publish to the last confirm; consume throughput from the first message handled to the
last, on the queue the publish phase filled. The details are in
`benchmarks/_rabbitmq_clients.py`.

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


def fixed_rate_latency(kind: str, contender: Contender, rate: float, count: int) -> dict[str, Any]:
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
    results: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in CONTENDERS}
    latency: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = {
        r: {k: {t: {p: [] for p in PERCENTILES} for t in TIMINGS} for k in CONTENDERS}
        for r in rates
    }
    run_id = uuid.uuid4().hex[:8]
    for round_no in range(lab.rounds):
        for kind in rotation(CONTENDERS, round_no):
            lab.settle()
            name = f"bench-{run_id}-{round_no}-{kind}"
            contender = KINDS[kind](node.url, name, node.management_url)
            published, consumed = asyncio.run(throughput(contender, sizes.amqp_messages))
            results[kind]["publish"].append(published)
            results[kind]["consume"].append(consumed)
            p99 = []
            for key, rate in rates.items():
                count = int(rate * sizes.amqp_rate_seconds)
                lab.settle()
                contender = KINDS[kind](node.url, f"{name}-{key}", node.management_url)
                measured = fixed_rate_latency(kind, contender, rate, count)
                for timing, values in measured.items():
                    for p, value in values.items():
                        latency[key][kind][timing][p].append(value)
                p99.append(f"{measured['end_to_end']['p99']:.1f} ms at {key}/s")
            print(
                f"  rabbitmq round {round_no + 1} {contender.label:<10} publish "
                f"{published:>7,.0f}/s  consume {consumed:>7,.0f}/s  p99 end to end "
                + ", ".join(p99),
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


def _median(data: Results, kind: str, mode: str) -> float:
    return Spread.of(data["throughput"][kind][mode]).median


def _ratio(data: Results, mode: str, other: str) -> float:
    theirs = _median(data, other, mode)
    return _median(data, "tidings", mode) / theirs if theirs else float("nan")


def render(data: Results) -> str:
    s = data["settings"]
    rows = []
    for kind in CONTENDERS:
        spreads = [Spread.of(data["throughput"][kind][m]) for m in MODES]
        ratios = [number(_median(data, kind, m) / _median(data, "aio-pika", m), 2) for m in MODES]
        rows.append((KINDS[kind].label, *(x.text() for x in spreads), *ratios))
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
    header = ("contender", "publish msg/s", "consume msg/s", "publish / aio-pika")
    return (
        f"{ABOUT}\n"
        f"Throughput, {s['messages']:,} messages per contender and round:\n\n"
        + table((*header, "consume / aio-pika"), rows)
        + f"\n\nLatency at fixed rates, {s['rate_seconds']:g} s each, milliseconds:\n\n"
        + table(("contender", "rate", "timed", "p50", "p95", "p99", "max"), latency_rows, right=3)
        + "\n"
    )


def charts(data: Results, out: Path) -> list[Chart]:
    labels = [KINDS[k].label for k in CONTENDERS]
    bars(
        out / "rabbitmq-throughput.png",
        title="RabbitMQ: messages/s, persistent, confirmed (median, min-max)",
        ylabel="messages/s",
        groups=labels,
        series={m: [Spread.of(data["throughput"][k][m]) for k in CONTENDERS] for m in MODES},
    )
    made = [Chart("rabbitmq-throughput.png", "RabbitMQ throughput")]
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
    for mode in MODES:
        ratio = _ratio(data, mode, "aio-pika")
        found.append(
            Target(
                f"RabbitMQ {mode}, tidings / raw aio-pika",
                f">= {TARGET_VS_RAW:.2f}x",
                f"{number(ratio, 2)}x",
                ratio >= TARGET_VS_RAW,
            )
        )
    for mode in MODES:
        ratio = _ratio(data, mode, "faststream")
        found.append(
            Target(
                f"RabbitMQ {mode}, tidings / FastStream",
                "> 1.00x (ahead)",
                f"{number(ratio, 2)}x",
                ratio > 1.0,
            )
        )
    return found


SCENARIO = Scenario(
    "rabbitmq",
    "RabbitMQ: tidings, aio-pika and FastStream",
    run,
    render,
    charts,
    targets,
)
