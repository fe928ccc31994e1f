"""Embedded broker end to end through the Bus: one publisher process, one worker process.

Durable (``synchronous=FULL``), 1 KiB events, a no-op handler. Prints a table:

- throughput with up to 256 publishes in flight (``asyncio.gather`` windows);
- throughput with ``publish_many`` batches of 256;
- publish-to-handler latency p50/p99 at a fixed 1,000 events/s;
- raw SQLite single-row-commit insert rate on the same disk, for comparison.

The worker is ``tidings run benchmarks.sink:bus``; the harness (``python -m benchmarks``)
measures the same and more, with charts. Files go in a temporary directory under the
current one, so run it from a directory on the disk you want to measure.

Usage: ``python benchmarks/embedded_bus.py [--events 20000] [--rate-seconds 5]``.
Not part of the pass/fail tests; a smoke test runs it on a tiny size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run by path: make the benchmarks package importable
    sys.path.insert(0, str(ROOT))

from benchmarks._load import WINDOW, end_to_end, fixed_rate  # noqa: E402
from benchmarks._measure import Spread, latency_ms  # noqa: E402
from benchmarks._sqlite_raw import raw_commits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--rate-seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"gather": [], "batch": []}
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        directory = Path(tmp)
        for r in range(args.rounds):
            for mode in ("gather", "batch"):
                url = f"sqlite:///{directory / f'{mode}-{r}.db'}"
                results[mode].append(end_to_end(url, args.events, batched=mode == "batch"))
        count = int(args.rate * args.rate_seconds)
        latencies, _ = fixed_rate(f"sqlite:///{directory / 'latency.db'}", args.rate, count)
        raw = raw_commits(directory / "raw.db", 500, rows_per_commit=1)
    latency = latency_ms(latencies)
    rows: list[tuple[str, str]] = []
    for mode, label in (("gather", f"publish x{WINDOW} in flight"), ("batch", "publish_many")):
        spread = Spread.of(results[mode])
        rows.append(
            (
                f"end-to-end, {label}",
                f"{spread.median:,.0f} events/s "
                f"(min {spread.low:,.0f}, max {spread.high:,.0f}, {spread.rounds} rounds)",
            )
        )
    rows.append((f"latency at {args.rate:,.0f}/s p50", f"{latency['p50']:.2f} ms"))
    rows.append(
        (
            f"latency at {args.rate:,.0f}/s p99",
            f"{latency['p99']:.2f} ms (max {latency['max']:.2f} ms)",
        )
    )
    rows.append(("raw SQLite single-row commits", f"{raw:,.0f} commits/s"))
    width = max(len(r[0]) for r in rows)
    print(f"embedded broker, {args.events:,} events of ~1 KiB, synchronous=FULL, no-op handler")
    print(f"{'measure'.ljust(width)} | result")
    print(f"{'-' * width}-|-{'-' * 40}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
