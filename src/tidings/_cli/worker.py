"""One worker process of ``tidings run``: a bus's consumers until a stop signal.

The first SIGTERM or SIGINT stops taking deliveries and lets the handlers in flight finish,
up to the drain timeout; the worker exits 0 when they all finished and 1 when the drain
timed out (the handlers still running were cancelled; their deliveries return to their
group). A second stop signal cancels the handlers at once and exits 1.

With metrics (``--metrics-port``), the worker adds a `tidings.observability.Prometheus`
middleware to the bus, reads the broker's statistics into its gauges every few seconds, and
serves ``/metrics`` itself, or leaves that to its supervisor (see `tidings._cli.metrics`).

A worker started by a supervisor (``--processes N``) takes any number of SIGTERM/SIGINT as
one request to drain: a service manager or a terminal may signal every process of the
service while the supervisor forwards the signal too. It stops at once on `FORCE_SIGNAL`,
which the supervisor sends when asked to stop a second time, and it stops when that
supervisor disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from .. import Bus, Context, Middleware, Outcome
from .._core.middleware import ConsumeNext
from ..transports import mask_url
from .metrics import RECORD_ENV, MetricsSettings, instrument, metrics_endpoint
from .signals import FORCE_SIGNAL, on_signals, on_stop_signals

__all__ = ["SUPERVISOR_ENV", "recording_metrics", "serve"]

# The name every process of ``tidings run`` logs under (part of its output).
logger = logging.getLogger("tidings.cli")

SUPERVISOR_ENV = "TIDINGS_SUPERVISOR_PID"
"""The variable a supervisor sets to its pid for the workers it starts."""


class _StopSignals:
    """The worker's answer to signals: the first stop signal drains; a second one (or
    `FORCE_SIGNAL` from the supervisor) cancels the task running the worker."""

    def __init__(self, drain_timeout: float, *, supervised: bool) -> None:
        self.stop = asyncio.Event()
        self.forced = False
        self._drain_timeout = drain_timeout
        self._supervised = supervised
        self._main = asyncio.current_task()

    def __call__(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == FORCE_SIGNAL and self._supervised:
            self.force(f"{name} from the supervisor")
        elif not self.stop.is_set():
            logger.info(
                "%s received: stopping; finishing in-flight handlers (up to %gs)",
                name,
                self._drain_timeout,
            )
            self.stop.set()
        elif self._supervised:
            logger.debug("%s received again: already stopping", name)
        else:
            self.force(f"{name} received again")

    def force(self, why: str) -> None:
        """Cancel the worker (the handlers still running with it), once."""
        if self.forced or self._main is None:
            return
        self.forced = True
        logger.warning("%s: cancelling the handlers still running", why)
        self._main.cancel()


class _Drain(Middleware):
    """Counts the handlers cancelled once the drain began: the drain timed out when any
    was (a handler's own timeout is a failed attempt, not a cancellation, here)."""

    def __init__(self) -> None:
        self.draining = False
        self.cut = 0

    async def consume(self, ctx: Context, call_next: ConsumeNext) -> Outcome | None:
        try:
            return await call_next(ctx)
        except asyncio.CancelledError:
            if self.draining:
                self.cut += 1
            raise


async def _watch_supervisor(pid: int, stop: asyncio.Event) -> None:
    """Stop when the supervisor that started this worker is gone (its children re-parent)."""
    while not stop.is_set():
        if os.getppid() != pid:
            logger.warning("supervisor process %d is gone: stopping", pid)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _drain(bus: Bus, drain: _Drain, drain_timeout: float) -> int:
    """Close `bus`, letting its handlers in flight finish for up to `drain_timeout`; the
    exit status: 0 when they all finished, 1 when some were cancelled."""
    drain.draining = True
    await bus.close(drain_timeout)
    if drain.cut:
        logger.warning(
            "%d handler(s) still running after the drain timeout of %gs were cancelled; "
            "their deliveries return to their group",
            drain.cut,
            drain_timeout,
        )
        return 1
    return 0


def recording_metrics() -> MetricsSettings | None:
    """The metrics a supervisor asked this worker to record (and not serve), if any."""
    interval = os.environ.pop(RECORD_ENV, "")  # not for processes we start
    return MetricsSettings(None, "", float(interval)) if interval else None


async def serve(
    bus: Bus, groups: list[str], drain_timeout: float, metrics: MetricsSettings | None = None
) -> int:
    """Run `bus`'s consumers of `groups` until a stop signal; return the exit status."""
    with metrics_endpoint(metrics) if metrics else contextlib.nullcontext():
        return await _serve(bus, groups, drain_timeout, metrics)


async def _serve(
    bus: Bus, groups: list[str], drain_timeout: float, metrics: MetricsSettings | None
) -> int:
    supervisor = os.environ.pop(SUPERVISOR_ENV, "")  # not for processes we start
    signals = _StopSignals(drain_timeout, supervised=supervisor.isdigit())
    undo = on_stop_signals(signals)
    undo_force = on_signals([FORCE_SIGNAL], signals) if supervisor.isdigit() else None
    watcher = (
        asyncio.create_task(_watch_supervisor(int(supervisor), signals.stop))
        if supervisor.isdigit()
        else None
    )
    prometheus = instrument(bus) if metrics else None
    drain = _Drain()
    bus.add_middleware(drain)  # innermost of the app's middleware: it sees cancellations
    refresher: asyncio.Task[None] | None = None
    try:
        await bus.start(groups=groups)
        if prometheus is not None and metrics is not None:
            refresher = asyncio.create_task(prometheus.watch(bus, metrics.interval))
        logger.info(
            "worker started: bus %r on %s, groups %s (pid %d)",
            bus.name,
            mask_url(bus.url),
            ", ".join(groups),
            os.getpid(),
        )
        await signals.stop.wait()
        if refresher is not None:
            refresher.cancel()
        status = await _drain(bus, drain, drain_timeout)
        logger.info("worker stopped (pid %d)", os.getpid())
        return status
    except asyncio.CancelledError:
        if not signals.forced:
            raise
        logger.error(
            "worker stopped by force (pid %d): cancelled handlers' deliveries return to "
            "their group when their lease ends",
            os.getpid(),
        )
        return 1
    finally:
        for task in (watcher, refresher):
            if task is not None:
                task.cancel()
        if undo_force is not None:
            undo_force()
        undo()
