"""Embedded broker (SQLite, the default transport) end to end, against raw SQLite commits;
what is measured is in `ABOUT`, which the report prints."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from . import embedded_throughput as transport_only
from ._charts import Line, bars
from ._lab import Lab
from ._load import DEFAULT_PAYLOAD, WINDOW, end_to_end, fixed_rate
from ._measure import PERCENTILES, Spread, latency_ms, rotation
from ._report import Chart, Results, Scenario, Target, number, table

WINDOWED = f"tidings, {WINDOW} publishes in flight"
BATCHED = f"tidings, publish_many of {WINDOW}"
TRANSPORT = f"tidings transport alone, {WINDOW} in flight"
RAW_SINGLE = "raw SQLite, 1 row per commit"
RAW_BATCH = f"raw SQLite, {WINDOW} rows per commit"
THROUGHPUT = (WINDOWED, BATCHED, TRANSPORT, RAW_SINGLE, RAW_BATCH)

TIDINGS_E2E = "tidings, publish to handler"
TIDINGS_CONFIRM = "tidings, publish to confirm"
RAW_GROUP = "raw SQLite, group commit"
LATENCY = (TIDINGS_E2E, TIDINGS_CONFIRM, RAW_SINGLE, RAW_GROUP)
RAW_ROW = 1024

ABOUT = """\
**Throughput.** The harness publishes events of about 1 KiB through a `Bus` on a fresh
file, either keeping 256 single publishes in flight or in `publish_many` batches of 256,
while one `tidings run` worker process handles them (a no-op handler, 256 in flight).
Events/s count from the first publish to the last event handled. Durable: publishes commit
with `synchronous=FULL` in WAL mode, the default. Raw SQLite, on the same disk with the same
settings, inserts 1 KiB rows from one process, one row or 256 rows per transaction: the
ceiling of the disk for publishing alone, with no consumer. "Transport alone" is
`benchmarks/embedded_throughput.py`: the same publisher and worker processes driving the
SQLite transport directly, without the Bus pipeline (envelope, validation, middleware).

**Latency at a fixed rate.** The same publisher publishes one event at a time at a fixed
rate, never waiting for the previous confirm; the worker reports publish-to-handler latency,
the publisher publish-to-confirm. Raw SQLite gets the same arrivals and commits each one as
it comes, or all that arrived since its last commit (a group commit, as the embedded broker
does); its latency is from arrival to commit.
"""

TARGET_RATE = 10_000.0
TARGET_P99_MS = 20.0


def _raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    return conn


def raw_commits(path: Path, count: int, rows_per_commit: int) -> float:
    """Rows/s inserting 1 KiB rows, `rows_per_commit` per transaction."""
    conn = _raw(path)
    body = os.urandom(RAW_ROW)
    start = time.perf_counter()
    for first in range(0, count, rows_per_commit):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO t (body) VALUES (?)", [(body,)] * min(rows_per_commit, count - first)
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def raw_latency(path: Path, rate: float, count: int, *, group: bool) -> list[float]:
    """Arrival-to-commit latencies (seconds) of rows arriving at `rate`/s, committed one
    per transaction, or (`group`) all that arrived since the last commit, up to 256."""
    conn = _raw(path)
    body = os.urandom(RAW_ROW)
    latencies: list[float] = []
    start = time.perf_counter()
    n = 0
    while n < count:
        now = time.perf_counter()
        due = min(count, int((now - start) * rate) + 1)
        if due <= n:
            time.sleep(start + n / rate - now)
            continue
        last = min(due, n + WINDOW) if group else n + 1
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t (body) VALUES (?)", [(body,)] * (last - n))
        conn.execute("COMMIT")
        done = time.perf_counter()
        latencies += [done - (start + i / rate) for i in range(n, last)]
        n = last
    conn.close()
    return latencies


def run(lab: Lab) -> Results:
    sizes = lab.sizes
    throughput: dict[str, list[float]] = {name: [] for name in THROUGHPUT}
    latency: dict[str, dict[str, list[float]]] = {
        name: {p: [] for p in PERCENTILES} for name in LATENCY
    }

    def record(name: str, values: list[float]) -> None:
        for key, value in latency_ms(values).items():
            latency[name][key].append(value)

    count = int(sizes.rate * sizes.rate_seconds)
    for round_no in range(lab.rounds):
        for name in rotation(THROUGHPUT, round_no):
            lab.settle()
            if name in (WINDOWED, BATCHED):
                url = lab.sqlite_url("bus")
                value = end_to_end(url, sizes.events, batched=name == BATCHED)
            elif name == TRANSPORT:
                window = transport_only.measure("window", sizes.events, WINDOW, 0, lab.scratch)
                value = window["events_per_s"]
            else:
                rows = 1 if name == RAW_SINGLE else WINDOW
                events = sizes.raw_single if rows == 1 else sizes.events
                value = raw_commits(lab.scratch_file("raw"), events, rows)
            throughput[name].append(value)
            print(f"  embedded round {round_no + 1} {name}: {value:,.0f}/s", flush=True)
        for name in rotation((TIDINGS_E2E, RAW_SINGLE, RAW_GROUP), round_no):
            lab.settle()
            if name == TIDINGS_E2E:
                e2e, confirms = fixed_rate(lab.sqlite_url("latency"), sizes.rate, count)
                record(TIDINGS_E2E, e2e)
                record(TIDINGS_CONFIRM, confirms)
            else:
                path = lab.scratch_file("raw-latency")
                record(name, raw_latency(path, sizes.rate, count, group=name == RAW_GROUP))
            print(
                f"  embedded round {round_no + 1} {name} at {sizes.rate:,.0f}/s: "
                f"p99 {latency[name]['p99'][-1]:.2f} ms",
                flush=True,
            )
    return {
        "settings": {
            "events": sizes.events,
            "raw_single_rows": sizes.raw_single,
            "payload_chars": DEFAULT_PAYLOAD,
            "raw_row_bytes": RAW_ROW,
            "rate": sizes.rate,
            "rate_seconds": sizes.rate_seconds,
            "worker_concurrency": 256,
            "sqlite": {"journal_mode": "WAL", "synchronous": "FULL"},
        },
        "throughput": throughput,
        "latency": latency,
    }


def render(data: Results) -> str:
    s = data["settings"]
    rows = [(name, Spread.of(data["throughput"][name]).text()) for name in THROUGHPUT]
    timed = {
        TIDINGS_E2E: "publish call to handler (2 processes)",
        TIDINGS_CONFIRM: "publish call to durable commit",
        RAW_SINGLE: "arrival to commit",
        RAW_GROUP: "arrival to commit",
    }
    latency_rows = [
        (name, timed[name], *(Spread.of(data["latency"][name][p]).text(2) for p in PERCENTILES))
        for name in LATENCY
    ]
    return (
        f"{ABOUT}\n"
        f"Throughput, {s['events']:,} events per tidings run (raw SQLite with one row per "
        f"commit: {s['raw_single_rows']:,} rows), events/s:\n\n"
        + table(("contender", "events/s"), rows)
        + f"\n\nLatency at {s['rate']:,.0f} events/s for {s['rate_seconds']:g} s, "
        "milliseconds:\n\n"
        + table(("contender", "timed", "p50", "p95", "p99", "max"), latency_rows, right=2)
        + "\n"
    )


def charts(data: Results, out: Path) -> list[Chart]:
    bars(
        out / "embedded-throughput.png",
        title="Embedded broker: events/s, durable (median, min-max)",
        ylabel="events/s (log scale)",
        groups=[name.replace(", ", ",\n") for name in THROUGHPUT],
        series={"events/s": [Spread.of(data["throughput"][n]) for n in THROUGHPUT]},
        log=True,
        line=Line(TARGET_RATE, "target 10,000 events/s end to end"),
    )
    bars(
        out / "embedded-latency.png",
        title=f"Embedded broker: latency at {data['settings']['rate']:,.0f} events/s",
        ylabel="milliseconds (log scale)",
        groups=[name.replace(", ", ",\n") for name in LATENCY],
        series={
            p: [Spread.of(data["latency"][n][p]) for n in LATENCY] for p in ("p50", "p95", "p99")
        },
        log=True,
        line=Line(TARGET_P99_MS, "target p99 20 ms end to end"),
    )
    return [
        Chart("embedded-throughput.png", "Embedded broker throughput"),
        Chart("embedded-latency.png", "Embedded broker latency"),
    ]


def targets(data: Results) -> list[Target]:
    found = []
    for name in (WINDOWED, BATCHED):
        rate = Spread.of(data["throughput"][name]).median
        found.append(
            Target(
                f"embedded end to end, durable ({name.removeprefix('tidings, ')})",
                f">= {TARGET_RATE:,.0f} events/s",
                f"{number(rate)} events/s",
                rate >= TARGET_RATE,
            )
        )
    p99 = Spread.of(data["latency"][TIDINGS_E2E]["p99"]).median
    rate = data["settings"]["rate"]
    found.append(
        Target(
            f"embedded p99 publish to handler at {rate:,.0f} events/s",
            f"< {TARGET_P99_MS:g} ms",
            f"{number(p99, 2)} ms",
            p99 < TARGET_P99_MS,
        )
    )
    return found


SCENARIO = Scenario(
    "embedded",
    "Embedded broker against raw SQLite",
    run,
    render,
    charts,
    targets,
)
