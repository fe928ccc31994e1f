"""Plumbing shared by the CLI commands: options, consoles, logging, and one-line errors.

Every command prints its errors as one line on stderr (``error: ...``) with exit status 1,
never a traceback, and masks passwords of URLs in them. Output that is not a terminal is
never truncated: tables are rendered at their natural width.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from .._core.bus import Bus
from .._exceptions import TidingsError

__all__ = [
    "CliSettings",
    "LogFormat",
    "LogLevel",
    "NameOption",
    "UrlOption",
    "configure_logging",
    "connect",
    "fail",
    "mask_text",
    "one_line_errors",
    "run_async",
    "stdout_console",
    "table",
]

T = TypeVar("T")

logger = logging.getLogger("tidings.cli")

# Wide enough for any cell, so piped output is never cut or wrapped by rich.
_PIPE_WIDTH = 100_000

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


# -- output --------------------------------------------------------------------------------


def stdout_console() -> Console:
    """A console on stdout: the terminal's width on a terminal, unlimited otherwise."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(highlight=False, width=_PIPE_WIDTH, soft_wrap=True)


def table(*columns: str, title: str | None = None, right: Iterable[str] = ()) -> Table:
    """A plain table with the given column headers (those in `right` right-aligned)."""
    aligned = set(right)
    result = Table(
        title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False
    )
    for column in columns:
        result.add_column(column, justify="right" if column in aligned else "left")
    return result


# -- errors --------------------------------------------------------------------------------

_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*):[^\s@/'\"]+@")


def mask_text(text: str, urls: Iterable[str | None] = ()) -> str:
    """`text` with the password of every URL in it, and of each URL in `urls`, masked.

    The URLs given are masked even when malformed (``user:pass@host`` without a scheme),
    which `mask_url` cannot recognise inside a longer text.
    """
    for url in urls:
        if not url or "@" not in url:
            continue
        userinfo = url.split("//", 1)[-1].rsplit("@", 1)[0]
        user, colon, password = userinfo.partition(":")
        if colon and password:
            text = text.replace(f"{userinfo}@", f"{user}:***@")
    return _CREDENTIALS.sub(r"\g<head>:***@", text)


def fail(message: str, *, urls: Iterable[str | None] = (), code: int = 1) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with `code`."""
    line = " ".join(mask_text(message, urls).split()) or "unknown error"
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def one_line_errors(urls: Iterable[str | None] = ()) -> Iterator[None]:
    """Turn any `TidingsError` raised inside into one ``error:`` line and exit status 1."""
    try:
        yield
    except TidingsError as exc:
        fail(str(exc) or type(exc).__name__, urls=urls)


def run_async(
    coro: Coroutine[Any, Any, T],
    *,
    urls: Iterable[str | None] = (),
    interrupt_ok: bool = False,
) -> T | None:
    """Run `coro` to completion, with `TidingsError` reported as one line.

    Ctrl-C ends the command with status 130, or quietly with 0 when `interrupt_ok` (the
    ``--watch`` loops, which one stops with Ctrl-C).
    """
    urls = list(urls)
    with one_line_errors(urls):
        try:
            return asyncio.run(coro)
        except KeyboardInterrupt:
            if interrupt_ok:
                return None
            raise typer.Exit(130) from None


@asynccontextmanager
async def connect(url: str | None, name: str) -> AsyncIterator[Bus]:
    """An open publish-only bus (it starts no consumers) for a one-shot command."""
    bus = Bus(url, name=name, consume=False)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


# -- logging -------------------------------------------------------------------------------


class _StderrHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time of each record, so log lines go
    through rich's live displays and through test runners that swap the stream."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message`` (and ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Send the log records of tidings (and of the application) to stderr at `level`."""
    handler = _StderrHandler()
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            _TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
