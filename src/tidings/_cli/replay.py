"""``tidings replay``: re-deliver a group's retained events since a point in time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from .. import ConfigError
from .._core.duration import parse_since
from .connection import connect, inspected_broker
from .errors import run_async
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption

__all__ = ["replay"]

GroupArgument = Annotated[str, typer.Argument(help="The group to re-deliver to.")]
SinceOption = Annotated[
    str,
    typer.Option("--since", help="Duration back from now (10m, 2h, 1d) or an ISO 8601 time."),
]


def _since(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(parse_since(value, time.time()), UTC)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


def replay(
    group: GroupArgument,
    since: SinceOption,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """Re-deliver to GROUP the retained events published since a point in time.

    Replayed deliveries bypass dedupe (ctx.replayed is True). Needs a transport that keeps
    a log: the embedded broker, Kafka, and RabbitMQ (in a stream, unless the bus has
    replay_stream=False).
    """
    moment = _since(since)
    broker = inspected_broker(app, url, name, management_url)

    async def go() -> int:
        async with connect(broker) as bus:
            return await bus.replay(group, moment)

    count = run_async(go(), urls=broker.secrets) or 0
    stamp = moment.isoformat(timespec="seconds")
    typer.echo(f"replayed {count} event(s) to {group} (published since {stamp})")
