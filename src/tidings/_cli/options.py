"""The option types several commands share, and the global options as chosen.

``--app``, ``--url``, ``--name`` and ``--management-url`` mean the same on every command
that inspects a broker (see `tidings._cli.connection` for how they choose one); the log
options are global (see `tidings._cli.app`) and reach the commands as `CliSettings`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

import typer

__all__ = [
    "AppOption",
    "CliSettings",
    "LogFormat",
    "LogLevel",
    "ManagementUrlOption",
    "NameOption",
    "UrlOption",
]

AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        metavar="MODULE:BUS",
        help="The application whose bus to inspect: its URL and name are used (the module "
        "is imported, not started). A dotted module or a file path, e.g. shop:bus, "
        "path/to/app.py:bus.",
        show_default=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="Broker URL, e.g. sqlite:///tidings.db, amqp://user:pass@host/vhost. "
        "Default: the --app bus's URL, else $TIDINGS_URL, else sqlite:///tidings.db.",
        show_default=False,
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option(
        "--name",
        metavar="NAME",
        help="Bus namespace (the name given to Bus(...)). Default: the --app bus's name, "
        "else tidings.",
        show_default=False,
    ),
]
ManagementUrlOption = Annotated[
    str | None,
    typer.Option(
        "--management-url",
        metavar="URL",
        help="RabbitMQ only: the management HTTP API, e.g. http://host:15672 "
        "(default: derived from the amqp:// URL).",
        show_default=False,
    ),
]


class LogLevel(enum.StrEnum):
    """Levels accepted by ``--log-level``."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogFormat(enum.StrEnum):
    """Formats accepted by ``--log-format``."""

    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class CliSettings:
    """The global options as chosen, kept on the click context for the commands (the
    worker supervisor hands them on to its child processes)."""

    log_level: str = "WARNING"
    log_format: str = "text"
