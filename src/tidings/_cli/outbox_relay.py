"""``tidings outbox relay MODULE:bus``: the relay of a bus's outbox, and nothing else.

The bus is started publish-only (``consume=False``): it declares its groups and runs the
relay, which sends the committed rows of the outbox, as in every started bus with a
``database``. Any number of relays may run at once (they share the rows with leases, keeping
per-key order). Every ``--progress-interval`` seconds in which something changed, a line says
how many rows the relays of the bus sent and what waits.

The first SIGTERM or SIGINT lets the pass under way finish (its rows are marked sent, or
given back unsent) and exits 0; a second one stops at once and exits 1 (rows the relay held
go back to the outbox when their lease ends, and are sent then, perhaps a second time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from .. import Bus, TidingsError
from .._core.url import resolve_url
from ..transports import mask_url
from .errors import one_line_errors, run_async
from .log import configure_logging
from .options import CliSettings, LogFormat
from .outbox_session import admin_of
from .queues import age_text
from .signals import on_stop_signals
from .target import load_bus

if TYPE_CHECKING:
    from ..outbox._admin import OutboxAdmin

__all__ = ["relay"]

# The name `tidings outbox relay` logs under, as the workers of `tidings run` log under
# ``tidings.cli``.
logger = logging.getLogger("tidings.cli")

TargetArgument = Annotated[
    str,
    typer.Argument(
        metavar="MODULE:BUS",
        help="Where the bus is: a dotted module or a file path, e.g. app.web:bus or "
        "path/to/app.py:bus (the attribute defaults to bus). It needs a database.",
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="Broker URL, overriding the one the bus was created with.",
        show_default=False,
    ),
]
ProgressOption = Annotated[
    float,
    typer.Option(
        "--progress-interval",
        min=0.1,
        help="Seconds between two progress lines (only when something changed).",
    ),
]


class _Stop:
    """The first stop signal stops after the pass under way; a second one cancels."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.forced = False
        self._main = asyncio.current_task()

    def __call__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.stop.is_set():
            logger.info("%s received: stopping after the relay's pass under way", name)
            self.stop.set()
        elif not self.forced and self._main is not None:
            self.forced = True
            logger.warning("%s received again: stopping at once", name)
            self._main.cancel()


class _Progress:
    """What the relays of the bus did since the last line, said when something changed."""

    def __init__(self, admin: OutboxAdmin, bus: Bus) -> None:
        self.admin = admin
        self.bus = bus
        self.since = bus.clock.time()
        self.last: tuple[int, int] | None = None
        self.failing = False

    async def report(self) -> None:
        now = self.bus.clock.time()
        try:
            sent = await self.admin.sent_since(self.since)
            stats = await self.admin.stats()
        except TidingsError as exc:
            if not self.failing:
                logger.warning("cannot read the outbox's progress: %s", exc)
            self.failing = True
            return
        self.failing = False
        seconds, self.since = max(now - self.since, 1e-9), now
        state = (stats.pending, stats.dead)
        if not sent and state == self.last:
            return
        self.last = state
        logger.info(
            "outbox of bus %r: sent %d in %.0fs (%.1f/s); %d pending, %d dead, oldest %s",
            self.bus.name,
            sent,
            seconds,
            sent / seconds,
            stats.pending,
            stats.dead,
            age_text(stats.oldest_age),
        )


async def _run(bus: Bus, admin: OutboxAdmin, interval: float) -> int:
    signals = _Stop()
    undo = on_stop_signals(signals)
    try:
        await bus.start()
        logger.info(
            "relay started: bus %r on %s, outbox in %s (pid %d)",
            bus.name,
            mask_url(bus.url),
            admin.describe(),
            os.getpid(),
        )
        progress = _Progress(admin, bus)
        while not signals.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.stop.wait(), interval)
            if not signals.stop.is_set():
                await progress.report()
        await bus.close()
        logger.info("relay stopped (pid %d)", os.getpid())
        return 0
    except asyncio.CancelledError:
        if not signals.forced:
            raise
        logger.error(
            "relay stopped by force (pid %d): the rows it held go back to the outbox when "
            "their lease ends",
            os.getpid(),
        )
        return 1
    finally:
        undo()
        with contextlib.suppress(Exception):
            await bus.close()
        await admin.close()


def relay(
    ctx: typer.Context,
    target: TargetArgument,
    url: UrlOption = None,
    progress_interval: ProgressOption = 10.0,
) -> None:
    """Run only the outbox relay of a bus until SIGTERM or Ctrl-C.

    Imports MODULE as `tidings run` does and starts its bus publish-only: no handler runs,
    the relay sends what the application committed to its outbox. Several relays may run
    at once. SIGTERM/SIGINT lets the pass under way finish and exits 0; a second signal
    stops at once (exit 1).
    """
    settings = ctx.obj if isinstance(ctx.obj, CliSettings) else CliSettings()
    if ctx.find_root().params.get("log_level") is None:
        configure_logging("INFO", LogFormat(settings.log_format))  # progress lines
    with one_line_errors([url]):
        bus = load_bus(target)
        if url:
            bus.url = resolve_url(url)
        admin = admin_of(bus, target)
        bus.consume = False  # the relay alone: no consumers
    code = run_async(_run(bus, admin, progress_interval), urls=[url, bus.url])
    raise typer.Exit(code or 0)
