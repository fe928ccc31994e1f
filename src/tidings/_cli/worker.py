"""One worker process of ``tidings run``: a bus's consumers until a stop signal.

The first SIGTERM or SIGINT stops taking deliveries and lets the handlers in flight finish
(up to the drain timeout); a second one cancels the handlers still running (their
deliveries return to their group). A worker started by a supervisor also stops when that
supervisor disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from .. import Bus
from ..transports import mask_url
from .signals import on_stop_signals

__all__ = ["SUPERVISOR_ENV", "serve"]

# The name every process of ``tidings run`` logs under (part of its output).
logger = logging.getLogger("tidings.cli")

SUPERVISOR_ENV = "TIDINGS_SUPERVISOR_PID"
"""The variable a supervisor sets to its pid for the workers it starts."""


class _StopSignals:
    """The worker's answer to stop signals: the first stops it, a second cancels the task
    running it (the handlers still running with it)."""

    def __init__(self, drain_timeout: float) -> None:
        self.stop = asyncio.Event()
        self.received = 0
        self._drain_timeout = drain_timeout
        self._main = asyncio.current_task()

    def __call__(self, signum: int) -> None:
        self.received += 1
        name = signal.Signals(signum).name
        if self.received == 1:
            logger.info(
                "%s received: stopping; finishing in-flight handlers (up to %gs)",
                name,
                self._drain_timeout,
            )
            self.stop.set()
        elif self._main is not None:
            logger.warning("%s received again: cancelling the handlers still running", name)
            self._main.cancel()


async def _watch_supervisor(pid: int, stop: asyncio.Event) -> None:
    """Stop when the supervisor that started this worker is gone (its children re-parent)."""
    while not stop.is_set():
        if os.getppid() != pid:
            logger.warning("supervisor process %d is gone: stopping", pid)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _drain(bus: Bus, drain_timeout: float) -> None:
    """Close `bus`, letting its handlers in flight finish for up to `drain_timeout`."""
    loop = asyncio.get_running_loop()
    draining = loop.time()
    await bus.close(drain_timeout)
    if loop.time() - draining >= drain_timeout > 0:
        logger.warning(
            "handlers still running after the drain timeout of %gs were cancelled; "
            "their deliveries return to their group",
            drain_timeout,
        )


async def serve(bus: Bus, groups: list[str], drain_timeout: float) -> int:
    """Run `bus`'s consumers of `groups` until a stop signal; return the exit status."""
    signals = _StopSignals(drain_timeout)
    undo = on_stop_signals(signals)
    supervisor = os.environ.pop(SUPERVISOR_ENV, "")  # not for processes we start
    watcher = (
        asyncio.create_task(_watch_supervisor(int(supervisor), signals.stop))
        if supervisor.isdigit()
        else None
    )
    try:
        await bus.start(groups=groups)
        logger.info(
            "worker started: bus %r on %s, groups %s (pid %d)",
            bus.name,
            mask_url(bus.url),
            ", ".join(groups),
            os.getpid(),
        )
        await signals.stop.wait()
        await _drain(bus, drain_timeout)
        logger.info("worker stopped (pid %d)", os.getpid())
        return 0
    except asyncio.CancelledError:
        if signals.received < 2:
            raise
        logger.error(
            "worker stopped by force (pid %d): cancelled handlers' deliveries return to "
            "their group when their lease ends",
            os.getpid(),
        )
        return 1
    finally:
        if watcher is not None:
            watcher.cancel()
        undo()
