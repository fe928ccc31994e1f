"""Embedded broker end to end through the Bus: one publisher process, one worker process.

Durable (``synchronous=FULL``), 1 KiB events, a no-op handler. Prints a table:

- throughput with up to 256 publishes in flight (``asyncio.gather`` windows);
- throughput with ``publish_many`` batches of 256;
- publish-to-handler latency p50/p99 at a fixed 1,000 events/s;
- raw SQLite single-row-commit insert rate on the same disk, for comparison.

Usage: ``python benchmarks/embedded_bus.py [--events 20000] [--rate-seconds 5]``.
Not part of the pass/fail tests; a smoke test runs it on a tiny size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tidings import Bus, Event

PAYLOAD = "x" * 900  # with the other fields and the envelope: about 1 KiB on the wire
WINDOW = 256


class Tick(Event, type="bench.tick"):
    n: int
    sent_at: float
    payload: str


def worker(url: str, expected: int) -> None:
    """Handle `expected` events, then print a JSON report and exit."""
    bus = Bus(url)
    latencies: list[float] = []
    first: list[float] = []
    done = asyncio.Event()

    @bus.subscribe("bench.tick", group="bench", concurrency=256)
    async def handle(event: Tick) -> None:
        now = time.time()
        if not first:
            first.append(now)
        latencies.append(now - event.sent_at)
        if len(latencies) >= expected:
            done.set()

    async def run() -> None:
        async with bus:
            print("ready", flush=True)
            await done.wait()
            last = time.time()
        print(json.dumps({"first": first[0], "last": last, "latencies": latencies}), flush=True)

    asyncio.run(run())


def start_worker(url: str, expected: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", url, str(expected)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        raise SystemExit(f"worker failed to start: {line!r}")
    return proc


def finish_worker(proc: subprocess.Popen[str]) -> dict[str, float | list[float]]:
    out, _ = proc.communicate(timeout=300)
    report: dict[str, float | list[float]] = json.loads(out.strip().splitlines()[-1])
    return report


async def publish_gather(url: str, count: int) -> float:
    async with Bus(url, consume=False) as bus:
        start = time.time()
        for first in range(0, count, WINDOW):
            batch = range(first, min(first + WINDOW, count))
            await asyncio.gather(
                *(bus.publish(Tick(n=n, sent_at=time.time(), payload=PAYLOAD)) for n in batch)
            )
        return start


async def publish_batches(url: str, count: int) -> float:
    async with Bus(url, consume=False) as bus:
        start = time.time()
        for first in range(0, count, WINDOW):
            now = time.time()
            batch = range(first, min(first + WINDOW, count))
            await bus.publish_many(Tick(n=n, sent_at=now, payload=PAYLOAD) for n in batch)
        return start


async def publish_at_rate(url: str, rate: float, seconds: float) -> int:
    count = int(rate * seconds)
    async with Bus(url, consume=False) as bus:
        start = time.perf_counter()
        tasks = []
        for n in range(count):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(bus.publish(Tick(n=n, sent_at=time.time(), payload=PAYLOAD)))
            )
        await asyncio.gather(*tasks)
    return count


def throughput_round(url: str, count: int, mode: str) -> float:
    proc = start_worker(url, count)
    runner = publish_gather if mode == "gather" else publish_batches
    start = asyncio.run(runner(url, count))
    report = finish_worker(proc)
    last = report["last"]
    assert isinstance(last, float)
    return count / (last - start)


def latency_round(url: str, rate: float, seconds: float) -> tuple[float, float, float]:
    count = int(rate * seconds)
    proc = start_worker(url, count)
    asyncio.run(publish_at_rate(url, rate, seconds))
    report = finish_worker(proc)
    latencies = sorted(report["latencies"])  # type: ignore[arg-type]
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return p50 * 1000, p99 * 1000, max(latencies) * 1000


def raw_sqlite_commits(directory: Path, count: int = 500) -> float:
    path = directory / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma synchronous=full")
    conn.execute("create table t (id integer primary key, body blob)")
    body = os.urandom(1024)
    start = time.perf_counter()
    for _ in range(count):
        conn.execute("begin immediate")
        conn.execute("insert into t (body) values (?)", (body,))
        conn.execute("commit")
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--rate-seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        directory = Path(tmp)
        results: dict[str, list[float]] = {"gather": [], "batch": []}
        for r in range(args.rounds):
            for mode in ("gather", "batch"):
                url = f"sqlite:///{directory / f'{mode}-{r}.db'}"
                results[mode].append(throughput_round(url, args.events, mode))
        p50, p99, worst = latency_round(
            f"sqlite:///{directory / 'latency.db'}", args.rate, args.rate_seconds
        )
        raw = raw_sqlite_commits(directory)
    for mode, label in (("gather", f"publish x{WINDOW} in flight"), ("batch", "publish_many")):
        values = results[mode]
        rows.append(
            (
                f"end-to-end, {label}",
                f"{statistics.median(values):,.0f} events/s "
                f"(min {min(values):,.0f}, max {max(values):,.0f}, {len(values)} rounds)",
            )
        )
    rows.append((f"latency at {args.rate:,.0f}/s p50", f"{p50:.2f} ms"))
    rows.append((f"latency at {args.rate:,.0f}/s p99", f"{p99:.2f} ms (max {worst:.2f} ms)"))
    rows.append(("raw SQLite single-row commits", f"{raw:,.0f} commits/s"))
    width = max(len(r[0]) for r in rows)
    print(f"embedded broker, {args.events:,} events of ~1 KiB, synchronous=FULL, no-op handler")
    print(f"{'measure'.ljust(width)} | result")
    print(f"{'-' * width}-|-{'-' * 40}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
