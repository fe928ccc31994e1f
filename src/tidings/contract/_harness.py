"""The harness a concrete test module gives the contract suite: buses and transports on one
broker, a clock, and condition waits that work the same on simulated and real time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

from .._clock import Clock, ManualClock, SystemClock
from .._core.bus import Bus
from .._core.retry import Retry
from ..transports import Delivery, GroupStats, Transport, TransportFactory, open_transport

__all__ = ["FixedDelay", "Harness", "Inbox", "eventually"]

Predicate = Callable[[], bool | Awaitable[bool]]

POLL = 0.01
"""Seconds between two checks of a condition."""


async def _check(predicate: Predicate) -> bool:
    result = predicate()
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


async def eventually(predicate: Predicate, timeout: float = 10.0, what: str = "") -> None:
    """Wait until `predicate` (sync or async) is true, checking every 10 ms; fail the test
    with an `AssertionError` after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while not await _check(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        await asyncio.sleep(POLL)


class FixedDelay(Retry):
    """A `Retry` whose back-off is exactly `base` seconds (no jitter).

    The contract uses it where a test must know when a retry becomes due: a long delay
    (an hour) keeps a retry waiting for the whole test, on simulated and real time alike.
    """

    def delay(self, attempt: int, rng: Any = None) -> float:
        return float(self.base)


class Harness:
    """Buses and transports on one private broker, for one contract test.

    A concrete test module builds one per test (a fresh broker each time: a new SQLite file,
    a new ``memory://`` name, a new RabbitMQ namespace) and closes it after the test. This
    base class runs on real time: back-offs in the contract are tiny, and `wait_until` just
    polls. A harness on a `ManualClock` overrides `tick` to move the clock instead.

    Args:
        url: the bus URL of the broker under test: a registered scheme (or one an installed
            package declares as an entry point), unless `factory` is given.
        factory: build transports with this factory (``factory(url, options)``, see
            `tidings.transports.TransportFactory`) instead of the one registered for the
            URL's scheme; buses get it as ``Bus(url, transport=factory)``.
        clock: the clock handed to every bus and transport (default: the real clock).
        bus_options: keyword options given to every `Bus` (e.g. a unique ``name`` so tests on
            a shared server do not see each other's queues, or ``dedupe=`` for transports
            without their own dedupe store).
        timeout: default seconds `wait_until` waits.
        bounded_bus_options: keyword options the contract adds for buses whose groups have a
            ``max_ready`` bound, on a transport that needs a setting for bounds (RabbitMQ:
            ``{"queue_type": "quorum"}``); none by default.
    """

    def __init__(
        self,
        url: str,
        *,
        factory: TransportFactory | None = None,
        clock: Clock | None = None,
        bus_options: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
        bounded_bus_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.factory = factory
        self.clock = clock or SystemClock()
        self.bus_options: dict[str, Any] = dict(bus_options or {})
        self.timeout = timeout
        self.bounded_bus_options: dict[str, Any] = dict(bounded_bus_options or {})
        self._buses: list[Bus] = []
        self._transports: list[Transport] = []

    @property
    def crosses_processes(self) -> bool:
        """True when another process can reach this broker by `url` and `process_options`
        (not ``memory://``, not a transport given by a factory)."""
        return self.factory is None and not self.url.startswith("memory:")

    def process_options(self) -> dict[str, Any]:
        """The `bus_options` another process can be given (plain values: the bus name, a
        dedupe URL, ...); the clock and objects stay behind."""
        plain = (str, int, float, bool, type(None))
        return {k: v for k, v in self.bus_options.items() if isinstance(v, plain)}

    # -- building ----------------------------------------------------------------------------

    def make_bus(self, **options: Any) -> Bus:
        """A new (not yet started) bus on the broker; `options` override `bus_options`.

        The harness closes it after the test.
        """
        merged = {**self.bus_options, **options}
        merged.setdefault("clock", self.clock)
        if self.factory is not None:
            merged.setdefault("transport", self.factory)
        bus = Bus(self.url, **merged)
        self._buses.append(bus)
        return bus

    async def make_transport(self, **options: Any) -> Transport:
        """A new, opened transport on the broker, built by `factory` (or the one registered
        for the URL's scheme). `options` go to the factory: common settings (``lease``,
        ``retention``, ``max_message_size``, ...) and the transport's own; the bus's
        ``name`` and the harness clock unless given. The harness closes it after the test."""
        options.setdefault("name", self.bus_options.get("name", "tidings"))
        options.setdefault("clock", self.clock)
        make = self.factory or open_transport
        transport = make(self.url, options)
        await transport.open()
        self._transports.append(transport)
        return transport

    def now(self) -> float:
        """The harness clock's time, in epoch seconds."""
        return self.clock.time()

    # -- time --------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move a `ManualClock` forward; on real time this does nothing (the contract's
        back-offs are tiny, so they pass on their own)."""
        if isinstance(self.clock, ManualClock):
            self.clock.advance(seconds)

    async def tick(self) -> None:
        """Let time pass between two checks of a condition: one poll interval."""
        await asyncio.sleep(POLL)

    async def wait_until(
        self, predicate: Predicate, timeout: float | None = None, what: str = ""
    ) -> None:
        """Wait until `predicate` (sync or async) holds; fail with `AssertionError` after
        `timeout` real seconds (default: the harness's)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not await _check(predicate):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {limit:g}s waiting for {what or predicate}")
            await self.tick()

    async def settled(self, source: Bus | Transport, *groups: str) -> None:
        """Wait until `groups` (all groups when none given) have nothing ready, in flight or
        scheduled: every delivery made so far has been settled for good."""

        async def quiet() -> bool:
            stats = await source.stats()
            chosen = [s for s in stats if not groups or s.group in groups]
            return all(s.ready == 0 and s.in_flight == 0 and s.scheduled == 0 for s in chosen)

        await self.wait_until(quiet, what=f"groups {groups or 'all'} to settle")

    # -- teardown ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every bus and transport the harness made (errors are collected and the
        first re-raised after everything was closed)."""
        errors: list[BaseException] = []
        for bus in reversed(self._buses):
            try:
                await bus.close(drain_timeout=1.0)
            except Exception as exc:  # close the rest, report the first failure
                errors.append(exc)
        for transport in reversed(self._transports):
            try:
                await transport.close()
            except Exception as exc:
                errors.append(exc)
        self._buses.clear()
        self._transports.clear()
        if errors:
            raise errors[0]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def group_stats(source: Bus | Transport, group: str) -> GroupStats:
    """The stats of one group; `AssertionError` when the broker does not list it."""
    for stats in await source.stats():
        if stats.group == group:
            return stats
    raise AssertionError(f"stats() does not list group {group!r}")


class Inbox:
    """A `Deliver` callback for transport-level tests: records each delivery (and when it
    came, in `time.monotonic` seconds) and holds it unsettled until the test settles it with
    `ack` or `settle(delivery, action)`.

    With ``auto_ack=True`` every delivery is acknowledged as soon as it is recorded; with
    ``settle_with=action`` every delivery is settled with ``await action(delivery)`` (e.g.
    ``transport.dead_letter`` with a failure, or a callback that decides per delivery).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        auto_ack: bool = False,
        settle_with: Callable[[Delivery], Awaitable[None]] | None = None,
    ) -> None:
        self.transport = transport
        self.auto_ack = auto_ack
        self.settle_with = transport.ack if auto_ack and settle_with is None else settle_with
        self.got: list[Delivery] = []
        self.times: list[float] = []
        self._gates: dict[int, asyncio.Future[Callable[[Delivery], Awaitable[None]]]] = {}

    async def __call__(self, delivery: Delivery) -> None:
        self.got.append(delivery)
        self.times.append(time.monotonic())
        if self.settle_with is not None:
            await self.settle_with(delivery)
            return
        gate = asyncio.get_running_loop().create_future()
        self._gates[id(delivery)] = gate
        action = await gate
        await action(delivery)

    @property
    def ids(self) -> list[str | None]:
        """The ids of the deliveries received, in order."""
        return [d.id for d in self.got]

    def settle(self, delivery: Delivery, action: Callable[[Delivery], Awaitable[None]]) -> None:
        """Let the callback holding `delivery` run `action(delivery)` and return."""
        self._gates.pop(id(delivery)).set_result(action)

    def ack(self, delivery: Delivery) -> None:
        """Acknowledge a held delivery."""
        self.settle(delivery, self.transport.ack)

    def held(self) -> list[Delivery]:
        """Deliveries received and not yet released by the test."""
        return [d for d in self.got if id(d) in self._gates]
