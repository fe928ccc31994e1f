"""``tidings demo [shop|streaming|signup]``: a scenario of `tidings.examples`, end to end.

By default on a temporary embedded broker file, with the services in worker processes
(``tidings run``), a live view of the progress and of every group's queue, and a summary.
"""

from __future__ import annotations

import enum
import json
import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.console import Group as Renderables
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import run_async
from .output import stdout_console, table

if TYPE_CHECKING:
    # The examples (and the shop's SQLAlchemy tables) load when a demo runs, not with every
    # command: a `tidings run` worker stays small.
    from ..examples.runner import DemoResult, Snapshot

__all__ = ["demo"]

_DEMO_LEASE = 3.0  # a killed worker's deliveries come back after this many seconds


class ScenarioName(enum.StrEnum):
    """The scenarios ``tidings demo`` can run."""

    shop = "shop"
    streaming = "streaming"
    signup = "signup"


ScenarioArgument = Annotated[
    ScenarioName, typer.Argument(help="The scenario to run.", case_sensitive=False)
]
CountOption = Annotated[
    int | None,
    typer.Option(
        "--orders",
        "-n",
        min=1,
        help="How many orders (watch events, sign-ups) to publish [default: 200, 200, 40].",
        show_default=False,
    ),
]
DemoUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Broker URL to run on (default: a temporary embedded broker file).",
        show_default=False,
    ),
]
ProcessesOption = Annotated[
    int,
    typer.Option(
        "--processes",
        "-p",
        min=0,
        help="Worker processes running the services (0: in this process; "
        "memory:// always runs in this process).",
    ),
]
DedupeOption = Annotated[
    str | None,
    typer.Option(
        "--dedupe",
        help="Dedupe store URL for the idempotent groups, e.g. redis://localhost:6379/0 "
        "(needed on amqp://, which has no store of its own).",
        show_default=False,
    ),
]
DemoNameOption = Annotated[
    str, typer.Option("--name", metavar="NAME", help="Bus namespace of the scenario.")
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the simulated failures.")]
TimeScaleOption = Annotated[
    float,
    typer.Option("--time-scale", min=0.0, help="Multiplies simulated work (the 2 s e-mail)."),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1.0, help="Seconds to wait for everything.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="URL",
        help="shop: the application's database for its tables, outbox, inbox and sagas, e.g. "
        "postgresql+asyncpg://user@host/db (default: a temporary SQLite file).",
        show_default=False,
    ),
]
ChaosOption = Annotated[
    bool,
    typer.Option(
        "--chaos",
        help="Kill a random worker process (SIGKILL) every few seconds and start it again; "
        "the summary checks the scenario's invariants in its database.",
    ),
]
ChaosEveryOption = Annotated[
    float,
    typer.Option("--chaos-every", min=0.1, metavar="SECONDS", help="Seconds between kills."),
]


def _queue_table(snapshot: Snapshot) -> Table:
    numbers = ("ready", "in flight", "scheduled for retry", "dead")
    result = table("group", *numbers, right=numbers)
    for name in snapshot.scenario.groups:
        q = snapshot.queues.get(name)
        row = (q.ready, q.in_flight, q.scheduled) if q else (0, 0, 0)
        result.add_row(name, *map(str, row), str(snapshot.dead.get(name, 0)))
    return result


class _View:
    """The live progress bars and per-group table (on a terminal only)."""

    def __init__(self, console: Console, snapshot: Snapshot, live: bool) -> None:
        self.snapshot = snapshot
        unit = snapshot.scenario.unit
        self.progress = Progress(
            TextColumn("{task.description:<26}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._published = self.progress.add_task(f"{unit} published", total=snapshot.count)
        self._done = self.progress.add_task(f"{unit} done", total=snapshot.count)
        self.live = (
            Live(self._render(), console=console, auto_refresh=False, transient=True)
            if live
            else None
        )

    def _render(self) -> RenderableType:
        workers = self.snapshot.workers
        note = f"{workers} worker process(es) running" if workers else "services in this process"
        return Renderables(self.progress, _queue_table(self.snapshot), note)

    def update(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.progress.update(self._published, completed=snapshot.published)
        self.progress.update(self._done, completed=snapshot.done)
        if self.live is not None:
            self.live.update(self._render(), refresh=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def _without_password(url: str) -> tuple[str, bool]:
    """`url` with its password left out (never masked: a hint is to be copied), and whether
    there was one."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not (sep and at and ":" in userinfo):
        return url, False
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}@{host}{slash}{path}", True


def _dlq_hint(group: str, url: str, name: str) -> str:
    """The command that lists `group`'s dead letters, ready to copy."""
    shown, left_out = _without_password(url)
    command = f"tidings dlq list {shlex.quote(group)} --url {shlex.quote(shown)}"
    command += f" --name {shlex.quote(name)}" if name != "tidings" else ""
    note = " (the password left out: add it to the URL)" if left_out else ""
    return f"Look at them: {command}{note}"


def _print_summary(
    console: Console, result: DemoResult, temporary: bool, name: str, database: str | None
) -> None:
    data = result.to_dict()
    from ..examples.runner import SCENARIOS

    scenario = SCENARIOS[result.scenario]
    where = "a temporary embedded broker" if temporary else data["url"]
    how = f"{result.processes} worker processes" if result.processes else "one process"
    if result.kills:
        how += f" ({result.kills} killed with SIGKILL and started again on the way)"
    console.print(f"\n{result.scenario} on {where} with {how} in {result.seconds:.2f}s")
    counts = table("outcome", "count", right=("count",))
    for outcome, value in result.counts.items():
        counts.add_row(outcome.replace("_", " "), str(value))
    console.print(counts)
    console.print(scenario.describe(result.counts))
    lat = data["latency_ms"]
    console.print(f"end-to-end latency p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}")
    if result.invariants:
        rules = table("invariant (read from the database)", "holds")
        for rule, holds in result.invariants.items():
            rules.add_row(rule, "yes" if holds else "NO")
        console.print(rules)
    dead = [g for g, n in result.dead.items() if n]
    named = f" --name {shlex.quote(name)}" if name != "tidings" else ""
    if temporary:
        console.print(
            f"Keep the broker to look around: tidings demo {result.scenario} "
            f"--url sqlite:///demo.db{named}, then tidings queues --url sqlite:///demo.db{named}",
            soft_wrap=True,
            markup=False,
        )
    if scenario.uses_database and database:
        shown, _ = _without_password(database)
        console.print(
            f"Its checkouts: tidings sagas list checkout --database {shlex.quote(shown)}{named}",
            soft_wrap=True,
            markup=False,
        )
    elif dead and not result.url.startswith("memory:"):
        console.print(_dlq_hint(dead[0], result.url, name), soft_wrap=True, markup=False)


def demo(
    scenario: ScenarioArgument = ScenarioName.shop,
    count: CountOption = None,
    url: DemoUrlOption = None,
    processes: ProcessesOption = 3,
    dedupe: DedupeOption = None,
    name: DemoNameOption = "tidings",
    seed: SeedOption = 7,
    time_scale: TimeScaleOption = 1.0,
    timeout: TimeoutOption = 180.0,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
    chaos: ChaosOption = False,
    chaos_every: ChaosEveryOption = 2.0,
) -> None:
    """Run a scenario end to end: shop (default), streaming or signup.

    shop: a checkout saga takes orders through inventory, payment and shipping; declined
    cards and payment timeouts are compensated (--chaos kills workers on the way and checks
    the invariants). streaming: video events fan out to recommendation, notification and a
    flaky analytics service. signup: the API answers at once, e-mail and points catch up.
    Prints the outcome counts and the end-to-end latency.
    """
    from ..examples.plan import Settings
    from ..examples.runner import SCENARIOS, Snapshot, run_scenario

    chosen = SCENARIOS[scenario.value]
    console = stdout_console()
    settings = Settings(seed=seed, time_scale=time_scale, lease=_DEMO_LEASE)
    items = count or chosen.default_count
    bus_options: dict[str, Any] = {"name": name}
    if dedupe:
        bus_options["dedupe"] = dedupe
    if chaos and (not processes or (url or "").startswith("memory:")):
        raise typer.BadParameter("--chaos kills worker processes: run with --processes 1 or more")
    with tempfile.TemporaryDirectory(prefix="tidings-demo-", ignore_cleanup_errors=True) as tmp:
        where = url or f"sqlite:///{Path(tmp) / 'demo.db'}"
        if chosen.uses_database:
            bus_options["database"] = database or f"sqlite+aiosqlite:///{Path(tmp) / 'shop.db'}"
        snapshot = Snapshot(scenario=chosen, count=items)
        view = _View(console, snapshot, live=console.is_terminal and not as_json)
        play = run_scenario(
            chosen,
            where,
            count=items,
            settings=settings,
            processes=processes,
            timeout=timeout,
            on_progress=view.update,
            bus_options=bus_options,
            chaos=chaos_every if chaos else None,
            seed=seed,
        )
        if view.live is not None:
            with view.live:
                result = run_async(play, urls=[url, dedupe, database])
        else:
            result = run_async(play, urls=[url, dedupe, database])
    if result is None:  # interrupted
        raise typer.Exit(130)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        _print_summary(console, result, temporary=url is None, name=name, database=database)
    if not result.holds:
        broken = ", ".join(rule for rule, holds in result.invariants.items() if not holds)
        typer.echo(f"error: invariants broken: {broken}", err=True)
        raise typer.Exit(1)
