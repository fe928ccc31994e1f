"""Throughput and latency of the embedded broker's transport, publisher and worker in two
processes, durable (``synchronous=FULL``), 1 KiB events. Prints a table.

    python benchmarks/embedded_throughput.py [--n 20000] [--window 256] [--rate 1000]
        [--concurrency 256] [--durable-settle]

Rows:
- gather window: one publisher keeps `window` single-message publishes in flight
  (``asyncio.gather`` over windows); a worker process acks each delivery. events/s counts
  from the first publish to the last delivery handled.
- list batches: the publisher passes lists of `window` messages to ``transport.publish``.
- fixed rate: `rate` events/s for a few seconds; p50/p99 of publish-to-handler latency.
- raw SQLite: single-row INSERT + COMMIT per event on the same disk, for comparison.

Publishes commit with ``synchronous=FULL``; claims and acks with NORMAL unless
``--durable-settle`` (see `tidings.transports.sqlite`). Files go in a temporary directory
under the current one, so run it from a directory on the disk you want to measure.

It drives the transport directly; it is a benchmark, never part of the pass/fail tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
if str(ROOT) not in sys.path:  # run by path: make the benchmarks package importable
    sys.path.insert(0, str(ROOT))

from benchmarks._measure import percentile  # noqa: E402
from tidings.transports import (  # noqa: E402
    Delivery,
    GroupSpec,  # noqa: E402
    OutgoingMessage,
    TransportOptions,  # noqa: E402
)
from tidings.transports.sqlite import SqliteOptions, SqliteTransport  # noqa: E402

GROUP = GroupSpec("bench", ("bench.#",))


def _group() -> GroupSpec:
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "256"))  # set by --concurrency
    return GroupSpec(GROUP.name, GROUP.patterns, concurrency=concurrency)


BODY_SIZE = 1024


def _settings() -> SqliteOptions:
    durable = os.environ.get("BENCH_DURABLE_SETTLE") == "1"  # set by --durable-settle
    return SqliteOptions(durable_settle=durable)


def _body() -> bytes:
    return struct.pack("<d", time.time()) + b"x" * (BODY_SIZE - 8)


def _message() -> OutgoingMessage:
    return OutgoingMessage(id=uuid.uuid4().hex, type="bench.event", body=_body())


async def worker(url: str, expected: int) -> None:
    """Ack `expected` deliveries, then print a JSON line with timings and latencies."""
    transport = SqliteTransport(url, TransportOptions(), _settings())
    await transport.open()
    done = asyncio.Event()
    latencies: list[float] = []
    times: list[float] = []

    async def deliver(delivery: Delivery) -> None:
        now = time.time()
        (sent,) = struct.unpack_from("<d", delivery.body)
        latencies.append(now - sent)
        times.append(now)
        await transport.ack(delivery)
        if len(latencies) >= expected:
            done.set()

    consumer = await transport.consume(_group(), deliver)
    print("ready", flush=True)
    await done.wait()
    await consumer.stop(5.0)
    await transport.close()
    print(json.dumps({"last": max(times), "latencies": latencies}), flush=True)


def _start_worker(url: str, expected: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", url, str(expected)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the worker process did not start")
    return proc


def _finish_worker(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = proc.communicate(timeout=300)
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


async def _publisher(url: str, run: str, n: int, window: int, rate: float) -> float:
    transport = SqliteTransport(url, TransportOptions(), _settings())
    await transport.open()
    await transport.declare([_group()])
    start = time.time()
    if run == "window":
        for offset in range(0, n, window):
            count = min(window, n - offset)
            await asyncio.gather(*(transport.publish([_message()]) for _ in range(count)))
    elif run == "list":
        for offset in range(0, n, window):
            await transport.publish([_message() for _ in range(min(window, n - offset))])
    else:
        pending: set[asyncio.Task[list[bool]]] = set()
        for i in range(n):
            delay = start + i / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(transport.publish([_message()]))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
    await transport.close()
    return start


def measure(
    run: str, n: int, window: int, rate: float, directory: Path | None = None
) -> dict[str, float]:
    """One publisher (this process) and one worker process on a fresh file in a temporary
    directory under `directory` (default: the current one)."""
    with tempfile.TemporaryDirectory(dir=directory or Path.cwd()) as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        # Declare first, so the worker finds the group and publishes are routed.
        asyncio.run(_declare(url))
        proc = _start_worker(url, n)
        start = asyncio.run(_publisher(url, run, n, window, rate))
        result = _finish_worker(proc)
    latencies = [float(x) for x in result["latencies"]]  # type: ignore[attr-defined]
    elapsed = float(result["last"]) - start  # type: ignore[arg-type]
    return {
        "events_per_s": n / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


async def _declare(url: str) -> None:
    transport = SqliteTransport(url, TransportOptions(), _settings())
    await transport.open()
    await transport.declare([_group()])
    await transport.close()


def raw_sqlite(n: int) -> float:
    """Single-row INSERT + COMMIT per event, WAL, synchronous=FULL: events/s."""
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        body = os.urandom(BODY_SIZE)
        start = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="events per throughput run")
    parser.add_argument("--window", type=int, default=256, help="publishes in flight / list size")
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s of the latency run")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the latency run")
    parser.add_argument(
        "--concurrency", type=int, default=256, help="deliveries the worker runs at once"
    )
    parser.add_argument(
        "--durable-settle", action="store_true", help="also fsync claims and acks (FULL)"
    )
    parser.add_argument("--worker", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["BENCH_CONCURRENCY"] = str(args.concurrency)  # inherited by the worker
    if args.durable_settle:
        os.environ["BENCH_DURABLE_SETTLE"] = "1"
    if args.worker:
        asyncio.run(worker(args.worker[0], int(args.worker[1])))
        return

    rows: list[tuple[str, str, str, str]] = []
    window = measure("window", args.n, args.window, args.rate)
    rows.append(
        (f"gather window of {args.window}, {args.n} events", f"{window['events_per_s']:,.0f}",
         f"{window['p50_ms']:.1f}", f"{window['p99_ms']:.1f}")
    )  # fmt: skip
    batch = measure("list", args.n, args.window, args.rate)
    rows.append(
        (f"lists of {args.window} per publish, {args.n} events", f"{batch['events_per_s']:,.0f}",
         f"{batch['p50_ms']:.1f}", f"{batch['p99_ms']:.1f}")
    )  # fmt: skip
    count = int(args.rate * args.seconds)
    fixed = measure("rate", count, args.window, args.rate)
    rows.append(
        (f"fixed rate {args.rate:,.0f}/s, {count} events", f"{fixed['events_per_s']:,.0f}",
         f"{fixed['p50_ms']:.1f}", f"{fixed['p99_ms']:.1f}")
    )  # fmt: skip
    raw = raw_sqlite(2000)
    rows.append(("raw SQLite, one INSERT+COMMIT per event", f"{raw:,.0f}", "-", "-"))

    header = ("run (1 KiB events, synchronous=FULL, 2 processes)", "events/s", "p50 ms", "p99 ms")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "  ".join("-" * w for w in widths)
    settles = "FULL" if args.durable_settle else "NORMAL"
    print(
        f"cpus: {os.cpu_count()}, sqlite {sqlite3.sqlite_version}, python "
        f"{sys.version.split()[0]}, worker concurrency {args.concurrency}, "
        f"claims/acks committed with synchronous={settles}"
    )
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells))


if __name__ == "__main__":
    main()
