"""The supervisor of ``tidings run --processes N``: N worker processes as one service.

It forwards SIGTERM and SIGINT to its workers and exits 0 when all of them exited 0. A
worker that fails makes the supervisor stop the others and exit 1, so the service manager
(systemd, Kubernetes) sees the failure and restarts the service. The workers live in their
own process group, so a Ctrl-C in the terminal reaches them once, through the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from asyncio.subprocess import Process

from .signals import on_stop_signals

__all__ = ["supervise"]

# The name every process of ``tidings run`` logs under (part of its output).
logger = logging.getLogger("tidings.cli")


class _Workers:
    """The worker processes of one supervisor."""

    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes
        self.stopping = False

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
                if code != 0:
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


async def supervise(argv: list[str], env: dict[str, str], processes: int, description: str) -> int:
    """Run `processes` children with `argv`, forwarding stop signals; return the status."""
    workers = _Workers(
        [
            await asyncio.create_subprocess_exec(*argv, env=env, process_group=0)
            for _ in range(processes)
        ]
    )

    def on_signal(signum: int) -> None:
        logger.info(
            "%s received: stopping %d worker process(es)", signal.Signals(signum).name, processes
        )
        workers.stop(signum)

    undo = on_stop_signals(on_signal)
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
