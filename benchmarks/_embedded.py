"""Embedded broker (SQLite, the default transport) end to end, against raw SQLite (its
disk's limits, `_sqlite_raw`) and huey on SQLite (a peer, `_huey`); what is measured is in
`ABOUT`, which the report prints."""

from __future__ import annotations

from pathlib import Path

from . import embedded_throughput as transport_only
from ._charts import Line, bars, ratio
from ._huey import SETTINGS as HUEY_SETTINGS
from ._huey import huey_cycle
from ._lab import Lab
from ._load import DEFAULT_PAYLOAD, WINDOW, end_to_end, fixed_rate
from ._measure import PERCENTILES, Spread, latency_ms, rotation
from ._memory import idle_worker
from ._report import Chart, Results, Scenario, Target, number, table
from ._sqlite_raw import RAW_ROW, raw_commits, raw_cycle, raw_latency

WINDOWED = f"tidings, {WINDOW} publishes in flight"
BATCHED = f"tidings, publish_many of {WINDOW}"
TRANSPORT = f"tidings transport alone, {WINDOW} in flight"
RAW_CYCLE = f"raw SQLite cycle, {WINDOW} rows per commit"
HUEY = "huey on SQLite, 1 task per commit"
RAW_SINGLE = "raw SQLite, 1 row per commit"
RAW_BATCH = f"raw SQLite, {WINDOW} rows per commit"
THROUGHPUT = (WINDOWED, BATCHED, TRANSPORT, RAW_CYCLE, HUEY, RAW_SINGLE, RAW_BATCH)
END_TO_END = (WINDOWED, BATCHED, TRANSPORT, RAW_CYCLE, HUEY)  # a publisher and a consumer
TIDINGS = (WINDOWED, BATCHED)

TIDINGS_E2E = "tidings, publish to handler"
TIDINGS_CONFIRM = "tidings, publish to confirm"
RAW_GROUP = "raw SQLite, group commit"
LATENCY = (TIDINGS_E2E, TIDINGS_CONFIRM, RAW_SINGLE, RAW_GROUP)
IDLE = ("rss", "peak")
SHORT = {RAW_CYCLE: "raw SQLite cycle", HUEY: "huey on SQLite", RAW_BATCH: "raw SQLite inserts"}

ABOUT = f"""\
**Throughput.** The harness publishes events of about 1 KiB through a `Bus` on a fresh
file, either keeping 256 single publishes in flight or in `publish_many` batches of 256,
while one `tidings run` worker process handles them (a no-op handler, 256 in flight).
Events/s count from the first publish to the last event handled. Durable: publishes commit
with `synchronous=FULL` in WAL mode, the default. "Transport alone" is
`benchmarks/embedded_throughput.py`: the same publisher and worker processes driving the
SQLite transport directly, without the Bus pipeline (envelope, validation, middleware).

The raw SQLite cycle is the limit of the disk for the same durable work, with the same
settings and shape: the harness inserts 1 KiB rows, 256 per transaction, while a second
process claims and deletes them, reading their bodies, 256 rows per transaction (one
`DELETE ... RETURNING`); rows/s from the first insert to the last delete's commit. huey is
the peer: the harness enqueues tasks with about 1 KiB of arguments while one huey consumer
process runs a no-op task; tasks/s from the first enqueue to the last task run
({HUEY_SETTINGS}). Raw SQLite with one or 256 rows per commit inserts alone, from one
process, with no consumer: the ceiling of the disk for publishing.

**Latency at a fixed rate.** The same publisher publishes one event at a time at a fixed
rate, never waiting for the previous confirm; the worker reports publish-to-handler latency,
the publisher publish-to-confirm. Raw SQLite gets the same arrivals and commits each one as
it comes, or all that arrived since its last commit (a group commit, as the embedded broker
does); its latency is from arrival to commit.

**Idle worker.** One `tidings run` worker process on a fresh file, read from
`/proc/<pid>/status` once it started and idled for a few seconds.
"""

TARGET_RATE = 10_000.0
TARGET_P99_MS = 10.0
TARGET_VS_CYCLE = 0.25
TARGET_VS_HUEY = 5.0
TARGET_IDLE_MB = 60.0
TARGET_IDLE_MIB = TARGET_IDLE_MB * 1e6 / 2**20


def _throughput(lab: Lab, name: str) -> float:
    sizes = lab.sizes
    if name in TIDINGS:
        return end_to_end(lab.sqlite_url("bus"), sizes.events, batched=name == BATCHED)
    if name == TRANSPORT:
        window = transport_only.measure("window", sizes.events, WINDOW, 0, lab.scratch)
        return float(window["events_per_s"])
    if name == RAW_CYCLE:
        return raw_cycle(lab.scratch_file("raw-cycle"), sizes.events)
    if name == HUEY:
        return huey_cycle(lab.scratch_file("huey"), sizes.events)
    rows = 1 if name == RAW_SINGLE else WINDOW
    events = sizes.raw_single if rows == 1 else sizes.events
    return raw_commits(lab.scratch_file("raw"), events, rows)


def run(lab: Lab) -> Results:
    sizes = lab.sizes
    throughput: dict[str, list[float]] = {name: [] for name in THROUGHPUT}
    latency: dict[str, dict[str, list[float]]] = {
        name: {p: [] for p in PERCENTILES} for name in LATENCY
    }
    idle: dict[str, list[float]] = {key: [] for key in IDLE}

    def record(name: str, values: list[float]) -> None:
        for key, value in latency_ms(values).items():
            latency[name][key].append(value)

    count = int(sizes.rate * sizes.rate_seconds)
    for round_no in range(lab.rounds):
        for name in rotation(THROUGHPUT, round_no):
            lab.settle()
            throughput[name].append(_throughput(lab, name))
            print(
                f"  embedded round {round_no + 1} {name}: {throughput[name][-1]:,.0f}/s",
                flush=True,
            )
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
        memory = idle_worker(lab.sqlite_url("idle"), sizes.idle_seconds)
        idle["rss"].append(memory.rss)
        idle["peak"].append(memory.peak)
        print(f"  embedded round {round_no + 1} idle worker: {memory.rss:.1f} MiB", flush=True)
    return {
        "settings": {
            "events": sizes.events,
            "raw_single_rows": sizes.raw_single,
            "payload_chars": DEFAULT_PAYLOAD,
            "raw_row_bytes": RAW_ROW,
            "rate": sizes.rate,
            "rate_seconds": sizes.rate_seconds,
            "idle_seconds": sizes.idle_seconds,
            "worker_concurrency": 256,
            "sqlite": {"journal_mode": "WAL", "synchronous": "FULL"},
            "huey": HUEY_SETTINGS,
        },
        "throughput": throughput,
        "latency": latency,
        "idle_worker_mib": idle,
    }


def _median(data: Results, name: str) -> float:
    return Spread.of(data["throughput"].get(name, [])).median


def _ratio(data: Results, tidings: str, other: str) -> float:
    theirs = _median(data, other)
    return _median(data, tidings) / theirs if theirs else float("nan")


def _ratios_table(data: Results) -> str:
    rows = [
        (
            f"tidings / {SHORT[other]}",
            *(f"{number(_ratio(data, t, other), 2)}x" for t in TIDINGS),
            goal,
        )
        for other, goal in (
            (RAW_CYCLE, f">= {TARGET_VS_CYCLE:g}x"),
            (HUEY, f">= {TARGET_VS_HUEY:g}x"),
            (RAW_BATCH, ""),
        )
    ]
    header = ("ratio of medians", "256 publishes in flight", "publish_many of 256", "goal")
    return table(header, rows)


def _worker_table(data: Results) -> str:
    s = data["settings"]
    p99 = Spread.of(data["latency"][TIDINGS_E2E]["p99"])
    idle = data.get("idle_worker_mib", {})
    rows = [
        (
            f"p99 publish to handler at {s['rate']:,.0f} events/s",
            f"{p99.text(2)} ms",
            f"< {TARGET_P99_MS:g} ms",
        ),
        (
            f"idle worker RSS (VmRSS) after {s.get('idle_seconds', 0):g} s",
            f"{Spread.of(idle.get('rss', [])).text(1)} MiB",
            f"< {TARGET_IDLE_MB:g} MB ({TARGET_IDLE_MIB:.1f} MiB)",
        ),
        ("idle worker peak RSS (VmHWM)", f"{Spread.of(idle.get('peak', [])).text(1)} MiB", ""),
    ]
    return table(("measure", "measured", "goal"), rows)


def render(data: Results) -> str:
    s = data["settings"]
    windowed = _median(data, WINDOWED)
    rows = [
        (
            name,
            "2" if name in END_TO_END else "1",
            Spread.of(data["throughput"].get(name, [])).text(),
            f"{number(windowed / _median(data, name), 2)}x",
        )
        for name in THROUGHPUT
        if name in data["throughput"]
    ]
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
        f"Throughput, {s['events']:,} events per run (raw SQLite with one row per commit: "
        f"{s['raw_single_rows']:,} rows), events/s; the last column is tidings with "
        f"{WINDOW} publishes in flight over the contender:\n\n"
        + table(("contender", "processes", "events/s", "tidings / this"), rows)
        + "\n\nThe ratios the targets name:\n\n"
        + _ratios_table(data)
        + f"\n\nLatency at {s['rate']:,.0f} events/s for {s['rate_seconds']:g} s, "
        "milliseconds:\n\n"
        + table(("contender", "timed", "p50", "p95", "p99", "max"), latency_rows, right=2)
        + "\n\nLatency and memory against their targets:\n\n"
        + _worker_table(data)
        + "\n"
    )


def charts(data: Results, out: Path) -> list[Chart]:
    shown = [name for name in THROUGHPUT if name in data["throughput"]]
    bars(
        out / "embedded-throughput.png",
        title="Embedded broker: events/s, durable (median, min-max)",
        ylabel="events/s (log scale)",
        groups=[name.replace(", ", ",\n") for name in shown],
        series={"events/s": [Spread.of(data["throughput"][n]) for n in shown]},
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
        line=Line(TARGET_P99_MS, f"target p99 {TARGET_P99_MS:g} ms end to end"),
    )
    made = [
        Chart("embedded-throughput.png", "Embedded broker throughput"),
        Chart("embedded-latency.png", "Embedded broker latency"),
    ]
    others = [name for name in (RAW_CYCLE, HUEY, RAW_BATCH) if name in data["throughput"]]
    if RAW_CYCLE in others:  # results of earlier runs may not have the cycle and huey
        bars(
            out / "embedded-ratios.png",
            title="Embedded broker: tidings end to end over each contender (ratio of medians)",
            ylabel="tidings / contender (log scale)",
            groups=[f"tidings /\n{SHORT[name]}" for name in others],
            series={
                t.removeprefix("tidings, "): [
                    ratio(data["throughput"][t], data["throughput"][name]) for name in others
                ]
                for t in TIDINGS
            },
            log=True,
            lines=[
                Line(TARGET_VS_HUEY, f"target: >= {TARGET_VS_HUEY:g}x huey"),
                Line(TARGET_VS_CYCLE, f"target: >= {TARGET_VS_CYCLE:g}x raw SQLite cycle"),
            ],
        )
        made.append(Chart("embedded-ratios.png", "Embedded broker ratios"))
    return made


def _ratio_target(data: Results, other: str, goal: float) -> Target:
    value = _ratio(data, WINDOWED, other)
    return Target(
        f"embedded end to end ({WINDOW} in flight), tidings / {SHORT[other]}",
        f">= {goal:g}x",
        f"{number(value, 2)}x",
        value >= goal,
    )


def targets(data: Results) -> list[Target]:
    found = []
    for name in TIDINGS:
        rate = _median(data, name)
        found.append(
            Target(
                f"embedded end to end, durable ({name.removeprefix('tidings, ')})",
                f">= {TARGET_RATE:,.0f} events/s",
                f"{number(rate)} events/s",
                rate >= TARGET_RATE,
            )
        )
    if RAW_CYCLE in data["throughput"]:  # results of earlier runs may not have them
        found.append(_ratio_target(data, RAW_CYCLE, TARGET_VS_CYCLE))
        found.append(_ratio_target(data, HUEY, TARGET_VS_HUEY))
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
    if "idle_worker_mib" in data:
        rss = Spread.of(data["idle_worker_mib"]["rss"]).median
        found.append(
            Target(
                "idle worker RSS, embedded broker (VmRSS)",
                f"< {TARGET_IDLE_MB:g} MB ({TARGET_IDLE_MIB:.1f} MiB)",
                f"{number(rss, 1)} MiB",
                rss < TARGET_IDLE_MIB,
            )
        )
    return found


SCENARIO = Scenario(
    "embedded",
    "Embedded broker against raw SQLite and huey",
    run,
    render,
    charts,
    targets,
)
