"""The supervisor of ``tidings run --processes N``: N worker processes as one service.

It forwards the first SIGTERM or SIGINT to its workers, which drain, and exits 0 when all of
them exited 0 (1 when one failed or its drain timed out). A second stop signal makes it send
`FORCE_SIGNAL`: the workers cancel their handlers and stop at once.

The workers live in process groups of their own, so a signal to the supervisor's group (a
terminal's Ctrl-C, ``timeout``, ``kill -TERM -PGID``) reaches them once, through the
supervisor, even while they are still starting. A service manager that signals every
process of the service (systemd) reaches them directly as well; a worker takes those
signals as one request to drain (see `tidings._cli.worker`).

With metrics, the supervisor serves them and is told of each worker that exits, so its
metrics leave with it (see `tidings._cli.metrics`).

A worker that fails makes the supervisor stop the others and exit 1, so the service manager
(systemd, Kubernetes) sees the failure and restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from asyncio.subprocess import Process
from collections.abc import Callable

from .signals import FORCE_SIGNAL, on_stop_signals

__all__ = ["supervise"]

# The name every process of ``tidings run`` logs under (part of its output).
logger = logging.getLogger("tidings.cli")

# A worker killed by a stop signal had not installed its handlers yet (it does before it
# consumes anything): stopped cleanly, with nothing in flight.
_STOPPED_BEFORE_START = {int(signal.SIGTERM), int(signal.SIGINT)}


class _Workers:
    """The worker processes of one supervisor."""

    def __init__(
        self, processes: list[Process], on_exit: Callable[[int], None] | None = None
    ) -> None:
        self.processes = processes
        self.on_exit = on_exit
        self.stopping = False
        self.signals = 0

    def on_signal(self, signum: int) -> None:
        """A stop signal: the first is forwarded (the workers drain), the next ones make
        the workers stop at once."""
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            logger.info("%s received: stopping %d worker process(es)", name, len(self.processes))
            self.stop(signum)
        else:
            logger.warning("%s received again: stopping the worker processes at once", name)
            self.stop(int(FORCE_SIGNAL))

    def stop(self, signum: int) -> None:
        """Send `signum` to every worker still running."""
        self.stopping = True
        for child in self.processes:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

    async def wait(self) -> bool:
        """Wait until every worker exited; True when one failed. The first to exit while
        no stop was asked for makes the others stop."""
        waits = {asyncio.ensure_future(c.wait()): c for c in self.processes}
        pending = set(waits)
        failed = False
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                child, code = waits[task], task.result()
                if self.on_exit is not None:
                    self.on_exit(child.pid)
                if code != 0 and not (self.stopping and -code in _STOPPED_BEFORE_START):
                    failed = True
                if not self.stopping:
                    logger.error(
                        "worker process %d exited with status %d: stopping the others",
                        child.pid,
                        code,
                    )
                    self.stop(int(signal.SIGTERM))
        return failed

    def kill(self) -> None:
        """Kill every worker still running (the supervisor is being cancelled)."""
        for child in self.processes:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()


async def supervise(
    argv: list[str],
    env: dict[str, str],
    processes: int,
    description: str,
    *,
    on_exit: Callable[[int], None] | None = None,
) -> int:
    """Run `processes` children with `argv`, forwarding stop signals; return the status.
    `on_exit` is called with the pid of each child that exited."""
    workers = _Workers(
        [
            await asyncio.create_subprocess_exec(*argv, env=env, process_group=0)
            for _ in range(processes)
        ],
        on_exit,
    )
    undo = on_stop_signals(workers.on_signal)
    logger.info(
        "started %d worker processes (pids %s): %s",
        processes,
        ", ".join(str(c.pid) for c in workers.processes),
        description,
    )
    try:
        failed = await workers.wait()
        logger.info("all %d worker processes stopped", processes)
        return 1 if failed else 0
    finally:
        undo()
        workers.kill()  # when we are being cancelled: leave no orphans
