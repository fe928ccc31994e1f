"""``tidings queues``: every group's counters and alerts, once or refreshed (``--watch``).

With ``--watch --alert-webhook URL`` each alert that starts or stops firing is posted to the
webhook (see `tidings._cli.alerts`).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .. import Bus, GroupStats
from ..transports import mask_url
from .alerts import AlertWebhook
from .connection import connect, inspected_broker
from .errors import fail, one_line_errors, run_async
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption
from .output import id_column, stdout_console, table, to_json

__all__ = ["queues", "queues_table", "stats_json"]

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
    bool, typer.Option("--json", help="Print a JSON list (one line per refresh).")
]

_NUMBERS = ("ready", "in flight", "scheduled", "dead", "consumers", "oldest", "publish", "ack")


def _age(seconds: float) -> str:
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
            _age(s.oldest_age),
            _rate(s.publish_rate),
            _rate(s.ack_rate),
            alerts,
        )
    return result


def stats_json(stats: list[GroupStats]) -> str:
    """`stats` as a JSON list of objects (one per group)."""
    return to_json([asdict(s) for s in stats])


class _Screen:
    """Where ``tidings queues`` prints: a table or JSON, once, as lines, or live."""

    def __init__(
        self,
        console: Console,
        *,
        as_json: bool,
        watch: bool,
        alerts: AlertWebhook | None = None,
    ) -> None:
        self.console = console
        self.as_json = as_json
        self.watch = watch
        self.alerts = alerts

    def render(self, stats: list[GroupStats]) -> Table | str:
        if self.as_json:
            return stats_json(stats)
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        title = f"{len(stats)} group(s) at {stamp}" if self.watch else None
        return queues_table(stats, title=title)

    def print(self, out: Table | str) -> None:
        if isinstance(out, str):
            typer.echo(out)
        else:
            self.console.print(out)

    async def once(self, bus: Bus) -> None:
        out = self.render(await bus.stats())
        if isinstance(out, Table) and not out.row_count:
            self.console.print(f"no groups on {mask_url(bus.url)}")
        else:
            self.print(out)

    async def stats(self, bus: Bus) -> list[GroupStats]:
        """The stats, with the alerts that started or stopped firing notified."""
        stats = await bus.stats()
        if self.alerts is not None:
            self.alerts.update(stats, await _outbox_stats(bus))
        return stats

    async def refresh(self, bus: Bus, interval: float) -> None:
        """Print the stats every `interval` seconds until cancelled (Ctrl-C): one line or
        table each time when the output is JSON or not a terminal, else one live table."""
        if self.as_json or not self.console.is_terminal:
            while True:
                self.print(self.render(await self.stats(bus)))
                await asyncio.sleep(interval)
        with Live(console=self.console, auto_refresh=False) as live:
            while True:
                live.update(self.render(await self.stats(bus)), refresh=True)
                await asyncio.sleep(interval)


async def _outbox_stats(bus: Bus) -> object | None:
    """The outbox statistics of a bus with an outbox (`Bus(database=...)`), else None."""
    read = getattr(bus, "outbox_stats", None)
    if read is None or getattr(bus, "database", None) is None:
        return None
    result: object = await read()
    return result


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
    screen = _Screen(stdout_console(), as_json=as_json, watch=watch, alerts=alerts)

    async def show() -> None:
        async with connect(broker) as bus:
            if watch:
                await screen.refresh(bus, interval)
            else:
                await screen.once(bus)

    run_async(show(), urls=[*broker.secrets, alert_webhook], interrupt_ok=True)
