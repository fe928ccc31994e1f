"""The ``tidings`` command line: the typer application, its global options, its entry.

Each command group is a module of its own: `health`, `publish`, `queues`, `replay`, `run`
(with its `worker` and `supervisor`), `dlq` and `demo`. What they share is named for what
it is: `options`, `output`, `errors`, `log` and `connection`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from .asyncapi import asyncapi
from .demo import demo
from .dlq import dlq_app
from .health import health
from .helptext import TidingsCommand, TidingsGroup
from .log import configure_logging
from .options import CliSettings, LogFormat, LogLevel
from .outbox import outbox_app
from .publish import publish
from .queues import queues
from .replay import replay
from .run import run
from .sagas import sagas_app
from .schema import schema_app

__all__ = ["app", "hoist_global_options", "main"]

app = typer.Typer(
    cls=TidingsGroup,
    name="tidings",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# In the order `tidings --help` lists them.
app.command(cls=TidingsCommand, no_args_is_help=True)(run)
app.command(cls=TidingsCommand)(demo)
app.command(cls=TidingsCommand)(health)
app.command(cls=TidingsCommand, no_args_is_help=True)(publish)
app.command(cls=TidingsCommand)(queues)
app.command(cls=TidingsCommand, no_args_is_help=True)(replay)
app.add_typer(dlq_app, name="dlq")
app.add_typer(sagas_app, name="sagas")
app.add_typer(outbox_app, name="outbox")
app.add_typer(schema_app, name="schema")
app.command(cls=TidingsCommand, no_args_is_help=True)(asyncapi)

# Commands that log at INFO unless told otherwise; the others log warnings and errors only.
_CHATTY = {"run"}
_QUIET = {"demo"}

LogLevelOption = Annotated[
    LogLevel | None,
    typer.Option(
        "--log-level",
        case_sensitive=False,
        help="Log level (default: INFO for run, WARNING otherwise, CRITICAL for demo).",
        show_default=False,
    ),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        case_sensitive=False,
        help="text, or json: one JSON object per line with time, level, logger, message.",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tidings {__version__}")
        raise typer.Exit()


VersionOption = Annotated[
    bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
]


@app.callback()
def _options(
    ctx: typer.Context,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = LogFormat.TEXT,
    version: VersionOption = False,
) -> None:
    """tidings: event-driven messaging for Python services.

    Run workers with `tidings run module:bus` (or `tidings run path/to/app.py:bus`), try it
    with `tidings demo`; inspect a broker with `tidings queues --app module:bus`.
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
