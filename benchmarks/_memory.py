"""Worker memory: resident set size of one ``tidings run`` worker process, idle and after
handling a load, on the embedded broker and on RabbitMQ."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ._charts import Line, bars
from ._lab import Lab
from ._load import publish_window, with_bus
from ._measure import Spread
from ._rabbitmq_clients import Tidings
from ._report import Chart, Results, Scenario, Target, number, table
from ._workers import Memory, sink_workers

TRANSPORTS = {"embedded": "embedded broker", "rabbitmq": "RabbitMQ"}
READINGS = {
    "idle_rss": "idle, now (VmRSS)",
    "idle_peak": "idle, peak (VmHWM)",
    "load_peak": "after the load, peak (VmHWM)",
    "load_rss": "after the load, now (VmRSS)",
}
TARGET_MB = 60.0
TARGET_MIB = TARGET_MB * 1e6 / 2**20

ABOUT = """\
One worker process, `tidings run benchmarks.sink:bus` (the CLI with its imports, one group,
256 handlers in flight), read from `/proc/<pid>/status` in MiB: once it has started and
idled for a few seconds, and again after it handled a load of events of about 1 KiB
published with 256 in flight. The target is 60 MB, that is 57.2 MiB.
"""

BASELINE = (
    "import tidings, pathlib; "
    "print(next(l for l in pathlib.Path('/proc/self/status').read_text().splitlines() "
    "if l.startswith('VmHWM')).split()[1])"
)


def _baseline() -> float:
    """Peak RSS in MiB of an interpreter that imported tidings."""
    out = subprocess.run(
        [sys.executable, "-c", BASELINE], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip()) / 1024


def _worker(
    url: str,
    count: int,
    idle_seconds: float,
    name: str = "bench",
    management_url: str | None = None,
) -> dict[str, float]:
    """Readings of one worker: idle after `idle_seconds`, then after `count` events."""
    options = {"management_url": management_url} if management_url else {}
    with sink_workers(url, name=name, management_url=management_url) as workers:
        time.sleep(idle_seconds)
        [idle] = workers.memory()
        with_bus(url, lambda bus: publish_window(bus, count), name, **options)
        workers.wait(count, max(60.0, count / 200))
        [load] = workers.memory()
    return _readings(idle, load)


def idle_worker(url: str, idle_seconds: float) -> Memory:
    """Memory of one ``tidings run`` worker process on `url` once it started and idled
    for `idle_seconds`."""
    with sink_workers(url) as workers:
        time.sleep(idle_seconds)
        [idle] = workers.memory()
    return idle


def _readings(idle: Memory, load: Memory) -> dict[str, float]:
    return {
        "idle_rss": idle.rss,
        "idle_peak": idle.peak,
        "load_peak": load.peak,
        "load_rss": load.rss,
    }


def run(lab: Lab) -> Results:
    sizes = lab.sizes
    transports = ["embedded", "rabbitmq"] if lab.use_rabbitmq else ["embedded"]
    results: dict[str, dict[str, list[float]]] = {
        t: {key: [] for key in READINGS} for t in transports
    }
    baseline: list[float] = []
    for round_no in range(lab.rounds):
        baseline.append(_baseline())
        for transport in transports:
            if transport == "embedded":
                url = lab.sqlite_url("memory")
                measured = _worker(url, sizes.memory_events, sizes.idle_seconds)
            else:
                node = lab.rabbitmq()
                name = f"bench-{uuid.uuid4().hex[:8]}-memory"
                try:
                    measured = _worker(
                        node.url,
                        sizes.memory_events,
                        sizes.idle_seconds,
                        name=name,
                        management_url=node.management_url,
                    )
                finally:
                    asyncio.run(Tidings(node.url, name, node.management_url).cleanup())
            for key, value in measured.items():
                results[transport][key].append(value)
            print(
                f"  memory round {round_no + 1} {transport}: idle {measured['idle_peak']:.1f} "
                f"MiB, after load {measured['load_peak']:.1f} MiB",
                flush=True,
            )
    return {
        "settings": {"events": sizes.memory_events, "idle_seconds": sizes.idle_seconds},
        "baseline": baseline,
        "transports": results,
    }


def render(data: Results) -> str:
    transports = [t for t in TRANSPORTS if t in data["transports"]]
    header = ("reading, MiB", *(TRANSPORTS[t] for t in transports))
    rows = [
        (label, *(Spread.of(data["transports"][t][key]).text(1) for t in transports))
        for key, label in READINGS.items()
    ]
    s = data["settings"]
    return (
        f"{ABOUT}\nLoad: {s['events']:,} events, after {s['idle_seconds']:g} s idle. "
        "A bare interpreter that imported `tidings` peaks at "
        f"{Spread.of(data['baseline']).text(1)} MiB.\n\n" + table(header, rows) + "\n"
    )


def charts(data: Results, out: Path) -> list[Chart]:
    transports = [t for t in TRANSPORTS if t in data["transports"]]
    bars(
        out / "worker-memory.png",
        title="One worker process: resident memory (median, min-max)",
        ylabel="MiB",
        groups=[TRANSPORTS[t] for t in transports],
        series={
            label: [Spread.of(data["transports"][t][key]) for t in transports]
            for key, label in READINGS.items()
            if key in ("idle_peak", "load_peak")
        },
        line=Line(TARGET_MIB, f"target: idle < {TARGET_MB:g} MB ({TARGET_MIB:.1f} MiB)"),
    )
    return [Chart("worker-memory.png", "Worker memory")]


def targets(data: Results) -> list[Target]:
    found = []
    for transport in (t for t in TRANSPORTS if t in data["transports"]):
        peak = Spread.of(data["transports"][transport]["idle_peak"]).median
        found.append(
            Target(
                f"idle worker memory, {TRANSPORTS[transport]} (peak RSS)",
                f"< {TARGET_MB:g} MB ({TARGET_MIB:.1f} MiB)",
                f"{number(peak, 1)} MiB",
                peak < TARGET_MIB,
            )
        )
    return found


SCENARIO = Scenario("memory", "Worker memory", run, render, charts, targets)
