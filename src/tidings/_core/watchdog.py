"""Handler timeouts with one timer per group instead of one per delivery."""

from __future__ import annotations

import asyncio
import contextlib
import math

__all__ = ["Watchdog"]


class Watchdog:
    """Cancels tasks that run past their deadline.

    A per-delivery ``asyncio.timeout`` (or timer handle) costs more than the rest of the
    pipeline at thousands of deliveries per second; timeouts are minutes, so one periodic
    check is precise enough: it ticks at a twentieth of the shortest timeout (at most once a
    second), and only while something is being watched.
    """

    def __init__(self) -> None:
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._shortest = math.inf
        self._runner: asyncio.Task[None] | None = None

    def watch(self, task: asyncio.Task[object], timeout: float) -> None:
        """Cancel `task` if it is still watched `timeout` seconds from now."""
        self._deadlines[task] = asyncio.get_running_loop().time() + timeout
        self._shortest = min(self._shortest, timeout)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="tidings-watchdog")

    def forget(self, task: asyncio.Task[object]) -> None:
        """Stop watching `task`."""
        self._deadlines.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """True when the watchdog cancelled `task` for running past its deadline."""
        return task in self._expired

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._deadlines:
            await asyncio.sleep(min(1.0, max(0.005, self._shortest / 20)))
            now = loop.time()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()

    async def close(self) -> None:
        """Stop the periodic check."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
