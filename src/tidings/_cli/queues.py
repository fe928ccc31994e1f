"""``tidings queues``: every group's counters and alerts, once or refreshed (``--watch``).

With ``--app MODULE:bus`` whose bus has a ``database``, a line under the table shows its
outbox (pending and dead messages, the oldest's age), read from the application's database
without starting the bus; ``--json`` then prints ``{"groups": [...], "outbox": {...}}``
instead of the list of groups. With ``--watch --alert-webhook URL`` each alert that starts or
stops firing is posted to the webhook (see `tidings._cli.alerts`).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .. import Bus, GroupStats, OutboxStats, TidingsError
from ..transports import mask_url
from .alerts import AlertWebhook
from .connection import Broker, connect, inspected_broker
from .errors import fail, one_line_errors, run_async
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption
from .outbox_session import admin_of
from .output import id_column, stdout_console, table, to_json
from .target import load_bus

if TYPE_CHECKING:
    from ..outbox._admin import OutboxAdmin

__all__ = ["age_text", "outbox_line", "queues", "queues_table", "stats_json"]

WatchOption = Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")]
IntervalOption = Annotated[
    float, typer.Option("--interval", min=0.1, help="Seconds between refreshes.")
]
AlertWebhookOption = Annotated[
    str | None,
    typer.Option(
        "--alert-webhook",
        metavar="URL",
        help="With --watch: POST each alert that starts or stops firing to URL, as JSON "
        '({"status": "firing"|"resolved", "rule", "group", "message", "value", "at"}).',
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print a JSON list of groups (one line per refresh); with an --app whose bus "
        'has an outbox, {"groups": [...], "outbox": {...}}.',
    ),
]

_NUMBERS = ("ready", "in flight", "scheduled", "dead", "consumers", "oldest", "publish", "ack")


def age_text(seconds: float) -> str:
    """A duration as the tables show it: ``-`` for none, ``4.2s``, ``3m 07s``, ``2h 05m``."""
    if seconds <= 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def queues_table(stats: list[GroupStats], *, title: str | None = None) -> Table:
    """The ``tidings queues`` table of `stats`."""
    group = id_column("group", (s.group for s in stats))
    result = table(group, *_NUMBERS, "alerts", title=title, right=_NUMBERS)
    for s in stats:
        alerts = Text("; ".join(s.alerts), style="bold red" if s.alerts else "")
        result.add_row(
            Text(s.group),
            str(s.ready),
            str(s.in_flight),
            str(s.scheduled),
            Text(str(s.dead), style="red" if s.dead else ""),
            str(s.consumers),
            age_text(s.oldest_age),
            _rate(s.publish_rate),
            _rate(s.ack_rate),
            alerts,
        )
    return result


def stats_json(stats: list[GroupStats], outbox: Outbox | None = None) -> str:
    """`stats` as a JSON list of objects (one per group); with `outbox` (a bus that has
    one), an object holding that list as ``groups`` and the outbox as ``outbox``."""
    groups = [asdict(s) for s in stats]
    if outbox is None:
        return to_json(groups)
    return to_json({"groups": groups, "outbox": outbox.as_json()})


def outbox_line(stats: OutboxStats) -> Text:
    """The line under the table: ``outbox: 3 pending, 1 dead, oldest 2.1s``."""
    line = Text(f"outbox: {stats.pending} pending, ")
    line.append(f"{stats.dead} dead", style="red" if stats.dead else "")
    line.append(f", oldest {age_text(stats.oldest_age)}")
    return line


class Outbox:
    """The outbox of the ``--app`` bus as one refresh read it: its stats, or why it could
    not be read (the groups are shown all the same)."""

    def __init__(self, stats: OutboxStats | None, error: str | None = None) -> None:
        self.stats = stats
        self.error = error

    @classmethod
    async def read(cls, admin: OutboxAdmin) -> Outbox:
        try:
            return cls(await admin.stats())
        except TidingsError as exc:
            return cls(None, str(exc))

    def as_json(self) -> dict[str, object]:
        if self.stats is None:
            return {"error": self.error}
        return {**asdict(self.stats), "idle": self.stats.idle}

    def line(self) -> Text:
        if self.stats is None:
            return Text(f"outbox: cannot be read: {self.error}", style="red")
        return outbox_line(self.stats)


def _outbox_of(broker: Broker, app: str | None) -> OutboxAdmin | None:
    """The outbox of the ``--app`` bus, when it has a ``database``, read without the bus.

    When the command opens that very bus (publish-only, to read RabbitMQ's counters), the
    bus is first told to leave its database alone: an inspecting command creates no tables
    and runs no relay."""
    if not app:
        return None
    bus = load_bus(app)  # imported already by `inspected_broker`: not run again
    if bus.database is None:
        return None
    admin = admin_of(bus, app)
    if broker.app_bus is bus and bus.state.value == "new":
        bus.use_database(None)
    return admin


class _Screen:
    """Where ``tidings queues`` prints: a table or JSON, once, as lines, or live."""

    def __init__(
        self,
        console: Console,
        *,
        as_json: bool,
        watch: bool,
        alerts: AlertWebhook | None = None,
        outbox: OutboxAdmin | None = None,
    ) -> None:
        self.console = console
        self.as_json = as_json
        self.watch = watch
        self.alerts = alerts
        self.outbox = outbox

    def render(self, stats: list[GroupStats], outbox: Outbox | None = None) -> Table | Group | str:
        if self.as_json:
            return stats_json(stats, outbox)
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        title = f"{len(stats)} group(s) at {stamp}" if self.watch else None
        result = queues_table(stats, title=title)
        return result if outbox is None else Group(result, Text(""), outbox.line())

    def print(self, out: Table | Group | str) -> None:
        if isinstance(out, str):
            typer.echo(out)
        else:
            self.console.print(out)

    async def read(self, bus: Bus) -> tuple[list[GroupStats], Outbox | None]:
        """The stats and the outbox, with the alerts that started or stopped firing
        notified."""
        stats = await bus.stats()
        outbox = await Outbox.read(self.outbox) if self.outbox is not None else None
        if self.alerts is not None:
            self.alerts.update(stats, outbox.stats if outbox is not None else None)
        return stats, outbox

    async def once(self, bus: Bus) -> None:
        stats, outbox = await self.read(bus)
        if not stats and not self.as_json:
            self.console.print(f"no groups on {mask_url(bus.url)}")
            if outbox is not None:
                self.console.print(outbox.line())
            return
        self.print(self.render(stats, outbox))

    async def refresh(self, bus: Bus, interval: float) -> None:
        """Print the stats every `interval` seconds until cancelled (Ctrl-C): one line or
        table each time when the output is JSON or not a terminal, else one live table."""
        if self.as_json or not self.console.is_terminal:
            while True:
                self.print(self.render(*await self.read(bus)))
                await asyncio.sleep(interval)
        with Live(console=self.console, auto_refresh=False) as live:
            while True:
                live.update(self.render(*await self.read(bus)), refresh=True)
                await asyncio.sleep(interval)

    async def close(self) -> None:
        if self.outbox is not None:
            await self.outbox.close()


def queues(
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
    watch: WatchOption = False,
    interval: IntervalOption = 2.0,
    as_json: JsonOption = False,
    alert_webhook: AlertWebhookOption = None,
) -> None:
    """Show every group: ready, in flight, scheduled, dead, consumers, age, rates, alerts.

    With --watch --alert-webhook URL, each alert that starts firing, and each that stops,
    is posted to URL once as JSON.
    """
    if alert_webhook is not None and not watch:
        fail("--alert-webhook needs --watch", urls=[alert_webhook], code=2)
    with one_line_errors([alert_webhook]):
        alerts = AlertWebhook(alert_webhook) if alert_webhook is not None else None
    broker = inspected_broker(app, url, name, management_url)
    with one_line_errors(broker.secrets):
        outbox = _outbox_of(broker, app)
    screen = _Screen(stdout_console(), as_json=as_json, watch=watch, alerts=alerts, outbox=outbox)

    async def show() -> None:
        try:
            async with connect(broker) as bus:
                if watch:
                    await screen.refresh(bus, interval)
                else:
                    await screen.once(bus)
        finally:
            await screen.close()

    run_async(show(), urls=[*broker.secrets, alert_webhook], interrupt_ok=True)
