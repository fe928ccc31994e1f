"""Clocks: the real one, and a controllable one for tests so back-off never sleeps."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(abc.ABC):
    """Source of time for transports that schedule deliveries."""

    @abc.abstractmethod
    def time(self) -> float:
        """Wall-clock time in epoch seconds."""

    @abc.abstractmethod
    async def sleep_until(self, deadline: float, wake: asyncio.Event) -> None:
        """Wait until `deadline` (epoch seconds) or until `wake` is set, whichever is first."""


class SystemClock(Clock):
    """The real clock."""

    def time(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float, wake: asyncio.Event) -> None:
        timeout = deadline - time.time()
        if timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await wake.wait()


class ManualClock(Clock):
    """A clock that only moves when the test says so (`advance`).

    Waiters whose deadline passes are woken at once; nothing ever sleeps on real time.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._waiters: list[asyncio.Event] = []

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` and wake everything waiting on it."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds
        for waiter in list(self._waiters):
            waiter.set()

    async def sleep_until(self, deadline: float, wake: asyncio.Event) -> None:
        if deadline <= self._now:
            return
        self._waiters.append(wake)
        try:
            await wake.wait()
        finally:
            self._waiters.remove(wake)
