"""``tidings demo``: the shop of `tidings._demo` running on a real broker, with a summary."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.console import Group as Renderables
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ._cli_base import run_async, stdout_console, table
from ._demo import GROUPS, DemoShop, build_shop
from ._exceptions import TidingsError
from ._stats import GroupStats
from ._url import mask_url

__all__ = ["demo"]

_POLL = 0.05


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0-100) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(slots=True)
class GroupResult:
    """How one group of the demo ended."""

    delivered: int = 0
    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0
    latencies: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "handled": self.handled,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "latency_ms": _latency(self.latencies),
        }


def _latency(values: list[float]) -> dict[str, float | None]:
    def ms(q: float) -> float | None:
        value = percentile(values, q)
        return None if value is None else round(value * 1000, 1)

    return {"p50": ms(50), "p99": ms(99)}


@dataclass(slots=True)
class Progression:
    """Where the demo is: what was published, and each group's counts and queue."""

    events: int
    expected: int
    published: int = 0
    groups: dict[str, GroupResult] = field(default_factory=dict)
    queues: dict[str, GroupStats] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        return sum(g.handled + g.dead_lettered for g in self.groups.values())


def _observe(
    shop: DemoShop, state: Progression, stats: list[GroupStats], base: dict[str, int]
) -> bool:
    """Update `state` from the tally and `stats`; True once every delivery is settled."""
    by_group = {s.group: s for s in stats if s.group in GROUPS}
    state.queues = by_group
    for name in GROUPS:
        tally = shop.tally.groups[name]
        dead = by_group[name].dead - base.get(name, 0) if name in by_group else 0
        state.groups[name] = GroupResult(
            delivered=tally.handled + dead,
            handled=tally.handled,
            retried=tally.retried,
            dead_lettered=dead,
            latencies=list(tally.latencies),
        )
    billing, shipping = state.groups["billing"], state.groups["shipping"]
    idle = all(s.ready == 0 and s.in_flight == 0 and s.scheduled == 0 for s in by_group.values())
    return (
        idle
        and len(by_group) == len(GROUPS)
        and billing.delivered == state.events
        and shipping.delivered == billing.handled
    )


def _queue_table(state: Progression) -> Table:
    numbers = ("handled", "retried", "dead-lettered", "ready", "in flight", "scheduled")
    result = table("group", *numbers, right=numbers)
    for name in GROUPS:
        g, q = state.groups.get(name, GroupResult()), state.queues.get(name)
        result.add_row(
            name,
            str(g.handled),
            str(g.retried),
            str(g.dead_lettered),
            str(q.ready if q else 0),
            str(q.in_flight if q else 0),
            str(q.scheduled if q else 0),
        )
    return result


class _View:
    """The live progress bar and per-group table (on a terminal only)."""

    def __init__(self, console: Console, state: Progression, live: bool) -> None:
        self.state = state
        self.progress = Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._publish = self.progress.add_task("publishing orders", total=state.events)
        self._settle = self.progress.add_task("settling deliveries", total=state.expected)
        self.live = (
            Live(self._render(), console=console, auto_refresh=False, transient=True)
            if live
            else None
        )

    def _render(self) -> RenderableType:
        return Renderables(self.progress, _queue_table(self.state))

    def update(self) -> None:
        self.progress.update(self._publish, completed=self.state.published)
        self.progress.update(self._settle, completed=self.state.settled)
        if self.live is not None:
            self.live.update(self._render(), refresh=True)


async def _play(shop: DemoShop, view: _View, timeout: float) -> float:
    """Run the shop until every delivery settled; return the seconds it took."""
    started = time.monotonic()
    async with shop.bus as bus:
        base = {s.group: s.dead for s in await bus.stats()}
        for order in shop.orders:
            await bus.publish(order, key=order.customer)
            view.state.published += 1
            view.update()
        deadline = started + timeout
        while not _observe(shop, view.state, await bus.stats(), base):
            view.update()
            if time.monotonic() > deadline:
                raise TidingsError(
                    f"the demo did not settle within {timeout:g}s "
                    f"({view.state.settled} of {view.state.expected} deliveries settled); "
                    "run it with --log-level INFO to see why"
                )
            await asyncio.sleep(_POLL)
        view.update()
    return time.monotonic() - started


def _summary(state: Progression, elapsed: float, url: str) -> dict[str, Any]:
    groups = {name: state.groups[name].to_dict() for name in GROUPS}
    every = [lat for g in state.groups.values() for lat in g.latencies]
    return {
        "events": state.events,
        "url": mask_url(url),
        "seconds": round(elapsed, 3),
        "groups": groups,
        "handled": sum(g["handled"] for g in groups.values()),
        "retried": sum(g["retried"] for g in groups.values()),
        "dead_lettered": sum(g["dead_lettered"] for g in groups.values()),
        "latency_ms": _latency(every),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def _print_summary(console: Console, summary: dict[str, Any], temporary: bool) -> None:
    numbers = ("delivered", "handled", "retried", "dead-lettered", "p50", "p99")
    result = table("group", *numbers, right=numbers)
    for name, g in summary["groups"].items():
        lat = g["latency_ms"]
        row = (g["delivered"], g["handled"], g["retried"], g["dead_lettered"])
        result.add_row(name, *map(str, row), _ms(lat["p50"]), _ms(lat["p99"]))
    where = "a temporary embedded broker" if temporary else summary["url"]
    console.print(
        f"\n{summary['events']} orders through billing and shipping on {where} "
        f"in {summary['seconds']:.2f}s"
    )
    console.print(result)
    lat = summary["latency_ms"]
    console.print(
        f"handled {summary['handled']}, retried {summary['retried']}, "
        f"dead-lettered {summary['dead_lettered']}; "
        f"latency p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])} (publish to handled)"
    )
    billing = summary["groups"]["billing"]
    console.print(
        f"{billing['retried']} payment(s) succeeded on a retry after a gateway timeout; "
        f"{billing['dead_lettered']} declined card(s) went to billing's dead-letter queue."
    )
    if temporary:
        console.print(
            "Keep the broker to look around: tidings demo --url sqlite:///demo.db, "
            "then tidings dlq list billing --url sqlite:///demo.db"
        )
    elif not summary["url"].startswith("memory:"):
        console.print(f"Look at them: tidings dlq list billing --url {summary['url']}")


def demo(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Broker URL to run on (default: a temporary embedded broker file).",
            show_default=False,
        ),
    ] = None,
    events: Annotated[int, typer.Option("--events", "-n", min=1, help="Orders to publish.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated failures.")] = 7,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds to wait for everything.")
    ] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run a small shop: orders are published, billing charges them, shipping ships them.

    Some payments time out once and succeed on a retry; declined cards go to the
    dead-letter queue. Prints how many were handled, retried and dead-lettered.
    """
    console = stdout_console()
    with tempfile.TemporaryDirectory(prefix="tidings-demo-", ignore_cleanup_errors=True) as tmp:
        chosen = url or f"sqlite:///{Path(tmp) / 'demo.db'}"
        shop = build_shop(chosen, events=events, seed=seed)
        state = Progression(events=events, expected=2 * events - shop.declined)
        view = _View(console, state, live=console.is_terminal and not as_json)
        if view.live is not None:
            with view.live:
                elapsed = run_async(_play(shop, view, timeout), urls=[url])
        else:
            elapsed = run_async(_play(shop, view, timeout), urls=[url])
    summary = _summary(state, elapsed or 0.0, shop.bus.url)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_summary(console, summary, temporary=url is None)
