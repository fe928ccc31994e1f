"""What the observability middleware costs: the pipeline on ``memory://`` with none, with
``Prometheus()`` and with ``OpenTelemetry()``, side by side in one run.

    python benchmarks/middleware.py [--events 20000] [--rounds 5]

Each round runs every contender once, in an order that rotates from round to round, through
the rounds of `benchmarks/pipeline.py` (``publish_many`` in batches of 256, single
``publish``, consuming with a no-op handler, 256 in flight); it prints the medians in events
per second and each as a share of the run without middleware. A pass-through middleware
(both hooks, doing nothing) shows what any middleware costs, before its own work.
``OpenTelemetry()`` records every span with the SDK (a ``TracerProvider`` with a
``SimpleSpanProcessor``) into an exporter that drops them, so the cost is the spans' and
the trace context's, not an exporter's I/O. Needs ``prometheus-client``,
``opentelemetry-api`` and ``opentelemetry-sdk``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.append(str(path))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from prometheus_client import CollectorRegistry  # noqa: E402

from benchmarks.pipeline import PassThrough, one_round  # noqa: E402
from tidings.observability import OpenTelemetry, Prometheus  # noqa: E402

PHASES = ("publish_many", "publish", "consume")


class Dropped(SpanExporter):
    """Takes every span and keeps none."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def contenders() -> dict[str, Callable[[], list[object]]]:
    registry = CollectorRegistry()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Dropped()))
    return {
        "no middleware": list,
        "pass-through": lambda: [PassThrough()],
        "Prometheus()": lambda: [Prometheus(registry=registry)],
        "OpenTelemetry()": lambda: [OpenTelemetry("memory://", tracer_provider=provider)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    made = contenders()
    names = list(made)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(asyncio.run(one_round(args.events, made[name]())))
    medians = {
        name: [statistics.median(column) for column in zip(*rows, strict=True)]
        for name, rows in results.items()
    }
    base = medians["no middleware"]
    print(
        f"observability middleware on memory://, {args.events:,} events, "
        f"medians of {args.rounds} rounds (events/s, and against no middleware)"
    )
    print(f"  {'':<16}" + "".join(f"{phase:>22}" for phase in PHASES))
    for name, row in medians.items():
        cells = "".join(f"{v:>13,.0f} ({v / b:>5.0%})" for v, b in zip(row, base, strict=True))
        print(f"  {name:<16}{cells}")


if __name__ == "__main__":
    main()
