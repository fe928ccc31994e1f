"""RabbitMQ publish and consume throughput: tidings against raw aio-pika and FastStream.

Same node, same settings for every contender: persistent messages, publisher confirms,
``mandatory``, a durable topic exchange with one durable classic queue bound by
``bench.tick``, about 1 KiB of JSON per message, 256 publishes in flight (``asyncio.gather``
windows of 256), prefetch 256 when consuming. Each contender gets its own exchange and queue
every round, deleted after the round; the order of the contenders rotates from round to round.
What each contender does per message is in `benchmarks/_rabbitmq_clients.py`; the harness
(``python -m benchmarks``) runs the same contenders and adds latency at a fixed rate.

Publish throughput is timed from the first publish to the last confirm (connecting and
declaring excluded); consume throughput from the first message handled to the last
(``(N - 1) / elapsed``), on a queue pre-filled by the contender's own publish phase.

Usage: ``python benchmarks/rabbitmq_throughput.py [--url amqp://...] [--messages 20000]
[--rounds 5] [--contenders tidings,aio-pika,faststream]``. Without ``--url`` it starts a
private RabbitMQ node (``tests/servers.py``) and stops it afterwards.
Not part of the pass/fail tests; a smoke test runs it on a tiny size.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run by path: make the benchmarks package importable
    sys.path.insert(0, str(ROOT))

from benchmarks._load import WINDOW  # noqa: E402
from benchmarks._rabbitmq import throughput  # noqa: E402
from benchmarks._rabbitmq_clients import CONTENDERS, KINDS, PREFETCH, broker_url  # noqa: E402


async def one_round(
    url: str,
    management_url: str | None,
    order: list[str],
    count: int,
    run_id: str,
    round_no: int,
    results: dict[tuple[str, str], list[float]],
) -> None:
    for kind in order:
        name = f"bench-{run_id}-{round_no}-{kind}"
        contender = KINDS[kind](url, name, management_url)
        published, consumed = await throughput(contender, count)
        results[(kind, "publish")].append(published)
        results[(kind, "consume")].append(consumed)
        print(
            f"  round {round_no + 1} {contender.label:<10} publish "
            f"{results[(kind, 'publish')][-1]:>9,.0f}/s  consume "
            f"{results[(kind, 'consume')][-1]:>9,.0f}/s",
            file=sys.stderr,
            flush=True,
        )


def table(results: dict[tuple[str, str], list[float]], kinds: list[str], args: Any) -> str:
    lines = [
        f"RabbitMQ throughput, {args.messages:,} messages of ~1 KiB JSON, persistent, "
        f"publisher confirms, {WINDOW} in flight, prefetch {PREFETCH}, {args.rounds} rounds "
        "(median, min-max)",
    ]
    header = f"{'contender':<11} | {'publish msg/s':<28} | {'consume msg/s':<28}"
    lines += [header, "-" * len(header)]
    for kind in kinds:
        cells = []
        for measure in ("publish", "consume"):
            values = results[(kind, measure)]
            cells.append(
                f"{statistics.median(values):>9,.0f} "
                f"({min(values):>7,.0f}-{max(values):<7,.0f})".ljust(28)
            )
        lines.append(f"{KINDS[kind].label:<11} | {cells[0]} | {cells[1]}")
    if "tidings" in kinds:
        for other in (k for k in kinds if k != "tidings"):
            ratios = [
                statistics.median(results[("tidings", m)]) / statistics.median(results[(other, m)])
                for m in ("publish", "consume")
            ]
            label = f"tidings/{KINDS[other].label}"
            lines.append(f"{label:<21} publish {ratios[0]:.2f}   consume {ratios[1]:.2f}")
    return "\n".join(line.rstrip() for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing RabbitMQ (default: start a private node)")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    args = parser.parse_args()
    kinds = [k.strip().lower() for k in args.contenders.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        parser.error(f"unknown contenders {unknown}; choose from {', '.join(CONTENDERS)}")
    results: dict[tuple[str, str], list[float]] = {
        (k, m): [] for k in kinds for m in ("publish", "consume")
    }
    run_id = uuid.uuid4().hex[:8]
    with broker_url(args.url) as (url, management_url):
        for round_no in range(args.rounds):
            shift = round_no % len(kinds)
            order = kinds[shift:] + kinds[:shift]
            asyncio.run(
                one_round(url, management_url, order, args.messages, run_id, round_no, results)
            )
    print(table(results, kinds, args))


if __name__ == "__main__":
    main()
