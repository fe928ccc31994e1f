"""The option types several commands share, and the global options as chosen.

``--url`` and ``--name`` mean the same on every command that inspects a broker; the log
options are global (see `tidings._cli.app`) and reach the commands as `CliSettings`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

import typer

__all__ = ["CliSettings", "LogFormat", "LogLevel", "NameOption", "UrlOption"]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="TIDINGS_URL",
        help="Broker URL, e.g. sqlite:///tidings.db, amqp://user:pass@host/vhost "
        "(default: $TIDINGS_URL, else sqlite:///tidings.db).",
        show_default=False,
    ),
]
NameOption = Annotated[
    str,
    typer.Option("--name", help="Bus namespace (the `name` given to Bus(...)).", show_default=True),
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
