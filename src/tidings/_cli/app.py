"""The ``tidings`` command line: run workers, publish, inspect queues and dead letters.

Commands live here (one-shot commands) and in ``_cli_run`` (the worker runner),
``_cli_dlq`` (dead-letter queues) and ``_cli_demo`` (the demo); ``_cli_base`` holds what
they share.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import types
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ConfigDict
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .._core.duration import parse_since
from .._core.messages import Command, Event, Message
from .._exceptions import BrokerUnavailable, ConfigError
from .._version import __version__
from ..transports._stats import GroupStats
from ..transports._urls import mask_url
from .console import (
    CliSettings,
    LogFormat,
    LogLevel,
    NameOption,
    UrlOption,
    configure_logging,
    connect,
    run_async,
    stdout_console,
    table,
)
from .demo import demo
from .dlq import dlq_app
from .run import run

__all__ = ["app", "main"]

app = typer.Typer(
    name="tidings",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command(no_args_is_help=True)(run)
app.command()(demo)
app.add_typer(dlq_app, name="dlq")

# Commands that log at INFO unless told otherwise; the others log warnings and errors only.
_CHATTY = {"run"}
_QUIET = {"demo"}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tidings {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="Log level (default: INFO for run, WARNING otherwise, CRITICAL for demo).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format",
            case_sensitive=False,
            help="text, or json: one JSON object per line with time, level, logger, message.",
        ),
    ] = LogFormat.TEXT,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """tidings: event-driven messaging for Python services.

    Run workers with `tidings run module:bus`, try it with `tidings demo`.
    """
    command = ctx.invoked_subcommand or ""
    if log_level is not None:
        level = log_level.value
    elif command in _CHATTY:
        level = "INFO"
    elif command in _QUIET:
        level = "CRITICAL"
    else:
        level = "WARNING"
    configure_logging(level, log_format)
    ctx.obj = CliSettings(log_level=level, log_format=log_format.value)


# -- health --------------------------------------------------------------------------------


@app.command()
def health(
    url: UrlOption = None,
    name: NameOption = "tidings",
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the broker.")
    ] = 10.0,
) -> None:
    """Check that the broker answers: print "ok <url>" and exit 0, else exit 1."""

    async def check() -> str:
        try:
            async with asyncio.timeout(timeout):
                async with connect(url, name) as bus:
                    await bus.ping()
                    return bus.url
        except TimeoutError:
            raise BrokerUnavailable(f"no answer from the broker within {timeout:g}s") from None

    answered = run_async(check(), urls=[url])
    typer.echo(f"ok {mask_url(answered or '')}")


# -- publish -------------------------------------------------------------------------------


def _raw_message_class(message_type: str, base: type[Message]) -> type[Message]:
    """A message class of `message_type` that keeps whatever fields the data has."""

    def body(namespace: dict[str, Any]) -> None:
        namespace["model_config"] = ConfigDict(extra="allow")
        namespace["__module__"] = __name__

    cls = types.new_class("RawMessage", (base,), {"type": message_type}, body)
    return cls


def _read_data(data: str) -> dict[str, Any]:
    if data == "-":
        text = sys.stdin.read()
    elif data.startswith("@"):
        try:
            text = Path(data[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {data[1:]}: {exc.strerror}", param_hint="'--data'"
            ) from None
    else:
        text = data
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {text[:80]!r}",
            param_hint="'--data'",
        ) from None
    if not isinstance(value, dict):
        raise typer.BadParameter(
            f'must be a JSON object like \'{{"order_id": "o-1"}}\', not {type(value).__name__}',
            param_hint="'--data'",
        )
    return value


@app.command(no_args_is_help=True)
def publish(
    message_type: Annotated[
        str, typer.Argument(metavar="TYPE", help="Event type, e.g. order.placed.")
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data", "-d", help="The event data: a JSON object, @file.json, or - for stdin."
        ),
    ] = "{}",
    key: Annotated[str | None, typer.Option("--key", "-k", help="Ordering key.")] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Event id (default: a new UUID).")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Send as a command to this one group instead of publishing."),
    ] = None,
    url: UrlOption = None,
    name: NameOption = "tidings",
) -> None:
    """Publish an event of TYPE with JSON data, and print its id once it is durable.

    A type no group subscribes to is an error (start the workers first).
    """
    fields = _read_data(data)

    async def send() -> str:
        cls = _raw_message_class(message_type, Command if to else Event)
        message = cls.model_validate(fields)
        async with connect(url, name) as bus:
            if to:
                return await bus.send(message, to=to, key=key, id=event_id)
            return await bus.publish(message, key=key, id=event_id)

    typer.echo(run_async(send(), urls=[url]))


# -- queues --------------------------------------------------------------------------------


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
    numbers = ("ready", "in flight", "scheduled", "dead", "consumers", "oldest", "publish", "ack")
    result = table("group", *numbers, "alerts", title=title, right=numbers)
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
    return json.dumps([asdict(s) for s in stats], ensure_ascii=False)


@app.command()
def queues(
    url: UrlOption = None,
    name: NameOption = "tidings",
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between refreshes.")
    ] = 2.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list (one line per refresh).")
    ] = False,
) -> None:
    """Show every group: ready, in flight, scheduled, dead, consumers, age, rates, alerts."""
    console = stdout_console()

    def render(stats: list[GroupStats]) -> Table | str:
        if as_json:
            return stats_json(stats)
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        title = f"{len(stats)} group(s) at {stamp}" if watch else None
        return queues_table(stats, title=title)

    async def show() -> None:
        async with connect(url, name) as bus:
            if not watch:
                out = render(await bus.stats())
                if isinstance(out, str):
                    typer.echo(out)
                elif out.row_count:
                    console.print(out)
                else:
                    console.print(f"no groups on {mask_url(bus.url)}")
                return
            if as_json or not console.is_terminal:
                while True:
                    out = render(await bus.stats())
                    typer.echo(out) if isinstance(out, str) else console.print(out)
                    await asyncio.sleep(interval)
            with Live(console=console, auto_refresh=False) as live:
                while True:
                    live.update(render(await bus.stats()), refresh=True)
                    await asyncio.sleep(interval)

    run_async(show(), urls=[url], interrupt_ok=True)


# -- replay --------------------------------------------------------------------------------


def _since(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(parse_since(value, time.time()), UTC)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command(no_args_is_help=True)
def replay(
    group: Annotated[str, typer.Argument(help="The group to re-deliver to.")],
    since: Annotated[
        str,
        typer.Option("--since", help="Duration back from now (10m, 2h, 1d) or an ISO 8601 time."),
    ],
    url: UrlOption = None,
    name: NameOption = "tidings",
) -> None:
    """Re-deliver to GROUP the retained events published since a point in time.

    Replayed deliveries bypass dedupe (ctx.replayed is True). Needs a transport that keeps
    a log (the embedded sqlite broker).
    """
    moment = _since(since)

    async def go() -> int:
        async with connect(url, name) as bus:
            return await bus.replay(group, moment)

    count = run_async(go(), urls=[url]) or 0
    stamp = moment.isoformat(timespec="seconds")
    typer.echo(f"replayed {count} event(s) to {group} (published since {stamp})")


_GLOBAL_OPTIONS = ("--log-level", "--log-format")


def hoist_global_options(argv: list[str]) -> list[str]:
    """Move ``--log-level``/``--log-format`` given after a subcommand to the front, so they
    work everywhere (``tidings run app:bus --log-level debug``) as well as first."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg.split("=", 1)[0] in _GLOBAL_OPTIONS:
            if "=" in arg or i + 1 >= len(argv):
                front.append(arg)
                i += 1
            else:
                front += argv[i : i + 2]
                i += 2
            continue
        rest.append(arg)
        i += 1
    return front + rest


def main() -> None:
    """Entry point of the ``tidings`` console script and ``python -m tidings``."""
    app(args=hoist_global_options(sys.argv[1:]), prog_name="tidings")
