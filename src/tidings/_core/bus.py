"""The `Bus`: the façade users touch — subscribe, publish, send, inspect, run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, Self

from .._clock import Clock
from .._exceptions import ConfigError
from ..outbox import OutboxStats
from ..transports import GroupStats, Transport, mask_url
from .bus_publisher import publisher_of
from .dlq import DeadLetters
from .duration import parse_since
from .messages import Message
from .middleware import check_middleware
from .outbox_link import OutboxLink
from .published import declare_published
from .replies import Requester
from .retry import Retry
from .saga_link import OnMissing, add_saga
from .settings import (
    BusState,
    MiB,
    TransportFactory,
    build_transport,
    check_bus_options,
    common_options,
    default_source,
    outbox_settings,
    transport_given,
    transport_options,
)
from .stats import AlertThresholds, evaluate_alerts
from .subscription import Group, HandlerFunc, HandlerOptions, check_group_names, registry_add
from .url import resolve_url
from .workers import Workers

__all__ = ["Bus", "BusState", "TransportFactory"]

logger = logging.getLogger(__name__)


class Bus:
    """A connection to one broker namespace, with the subscribers registered on it.

    Args:
        url: ``sqlite:///tidings.db`` (the embedded broker; a relative path, or
            ``sqlite:////abs/path.db``), ``memory://``, ``amqp://user:pass@host/vhost``;
            None reads ``TIDINGS_URL``, else uses ``sqlite:///tidings.db``.
        name: the namespace of all the bus declares (RabbitMQ exchange, queue prefix).
        source: CloudEvents ``source`` of what it publishes (``tidings://<host>/<program>``).
        consume: False makes a publish-only bus even when it has subscribers (a web process
            that imports the service module to publish); it still declares the groups.
        middleware: `tidings.Middleware` instances, outermost first: each wraps every
            delivery consumed and every message published.
        on_unroutable: ``"error"`` raises `Unroutable` when nothing receives a publish;
            ``"ignore"`` accepts it.
        max_message_size: largest encoded message in bytes (default 1 MiB).
        lease: seconds a delivery stays claimed before it returns (embedded broker).
        retention: seconds published events stay in the retained log (embedded broker).
        dedupe: URL of a dedupe store (``redis://host:6379/0``) for transports without one.
        wire: ``"structured"`` or ``"binary"`` CloudEvents mode (consumers read both).
        dedupe_ttl: seconds a dedupe marker lives (default 24 h).
        clock: time source; tests pass a `ManualClock`.
        alert_thresholds: thresholds for the alerts in `stats` (``backlog``: 1000 ready).
        transport: a `tidings.transports.Transport` to run on instead of the one `url`
            names (its own options apply), or a factory ``(url, options) -> Transport``
            called with this bus's settings when it starts.
        poison_after: a dead letter replayed this many times that fails again is poisoned:
            ``replay(all=True)`` leaves it alone unless asked (default 3).
        database: the application's database (an async SQLAlchemy URL or `AsyncEngine`)
            for the outbox and transactional handlers; see `tidings.outbox` for it and for
            ``outbox_retention`` (1 h), ``outbox_attempts`` (10), ``inbox_ttl`` (7 days),
            ``outbox_poll`` (1 s), ``outbox_lease`` (30 s) and ``create_tables``; and for
            sagas (`add_saga`): ``saga_retention``, seconds a completed one is kept (7 days).
        **options: the transport's own options, e.g. RabbitMQ's ``queue_type``; a name the
            transport does not know is a `ConfigError`, raised before any connection.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        name: str = "tidings",
        source: str | None = None,
        consume: bool = True,
        middleware: Iterable[Any] = (),
        on_unroutable: Literal["error", "ignore"] = "error",
        max_message_size: int = 1 * MiB,
        lease: float = 30.0,
        retention: float = 7 * 24 * 3600.0,
        dedupe: str | None = None,
        wire: Literal["structured", "binary"] = "structured",
        dedupe_ttl: float = 24 * 3600.0,
        clock: Clock | None = None,
        alert_thresholds: AlertThresholds | None = None,
        transport: Transport | TransportFactory | None = None,
        poison_after: int = 3,
        database: Any = None,
        outbox_retention: float = 3600.0,
        outbox_attempts: int = 10,
        inbox_ttl: float = 7 * 24 * 3600.0,
        outbox_poll: float = 1.0,
        outbox_lease: float = 30.0,
        create_tables: bool = True,
        saga_retention: float = 7 * 24 * 3600.0,
        **options: Any,
    ) -> None:
        check_bus_options(on_unroutable, wire, max_message_size, lease, poison_after)
        outbox = outbox_settings(
            outbox_retention, outbox_attempts, inbox_ttl, outbox_poll, outbox_lease, create_tables
        )
        self.url = resolve_url(url)
        self.name = name
        self.source = source or default_source()
        self.consume = consume
        self.middleware = list(middleware)
        check_middleware(self.middleware, self)
        self.on_unroutable = on_unroutable
        self.max_message_size = int(max_message_size)
        self.wire = wire
        self.poison_after = poison_after
        self._factory, self._transport, self.clock = transport_given(transport, clock)
        self.alert_thresholds = alert_thresholds
        self._options = common_options(
            name, lease, retention, max_message_size, dedupe, dedupe_ttl, self.clock, on_unroutable
        )
        self._extra = MappingProxyType(dict(options))
        self._outbox = OutboxLink(database, bus=name, settings=outbox, sagas_kept=saga_retention)
        self._publisher = publisher_of(self)
        self._groups: dict[str, Group] = {}
        self._workers: Workers | None = None
        self._requester: Requester | None = None
        self._state = BusState.NEW

    def subscribe(
        self,
        pattern: str,
        *,
        group: str | None = None,
        retry: Retry | None = None,
        concurrency: int = 16,
        idempotent: bool = False,
        ordered: bool = False,
        timeout: float | None = 300.0,
        max_ready: int | None = None,
        transactional: bool = False,
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Register an async handler for events whose type matches `pattern` (a decorator).

        The handler takes ``(event)`` or ``(event, ctx)``; the data is validated into the
        first parameter's annotation (a model, ``dict``, or none for raw JSON). What it
        returns is the reply when the event is a `request`.

        Args:
            pattern: an event type or an AMQP topic pattern (``*`` one word, ``#`` any).
            group: the group (durable queue) to join; defaults to ``module.function``.
            retry: the `Retry` policy of the handler; ``Retry()`` by default.
            concurrency: most deliveries a worker handles at once (a group setting).
            idempotent: skip event ids the group handled (RabbitMQ needs ``dedupe=``).
            ordered: one event per key at a time, in publish order (a group setting).
            timeout: seconds before a running handler is cancelled (a failed attempt).
            max_ready: most ready messages the group holds; publishing past it raises
                `QueueFull` at once (a group setting; RabbitMQ needs quorum queues).
            transactional: run it in a transaction of the ``database`` (``ctx.session``)
                with the event's inbox row: its writes and context publishes commit
                together, and a duplicate is acknowledged without running.

        Raises:
            StateError: the bus is open already.
            ConfigError: a bad pattern or option, or one that conflicts in the group.
        """
        self._state.check_new("subscribe handlers")
        options = HandlerOptions(
            group, retry, concurrency, idempotent, ordered, timeout, max_ready, transactional
        )
        return lambda func: registry_add(self._groups, pattern, func, options).func

    def add_saga(
        self, saga: type[Any], *, on_missing: OnMissing = "ignore", retry: Retry | None = None
    ) -> None:
        """Run `saga`, a `tidings.sagas.Saga` subclass, in a group named after it, its
        instances in the ``database`` (a `ConfigError` without one). An ``@on`` event with
        no instance is ignored (logged), or dead-lettered with ``on_missing="dead_letter"``;
        `retry` is its steps' `Retry`. See `tidings.sagas`."""
        self._state.check_new("add sagas")
        now = lambda: self.clock.time()  # noqa: E731 (TestBus replaces the clock later)
        add_saga(self._groups, self._outbox, saga, on_missing, retry, self.middleware, now)

    def publishes(self, *message_classes: type[Message]) -> None:
        """Declare the events and commands this bus publishes (``tidings schema``, ``asyncapi``)."""
        declare_published(self, message_classes)

    def add_middleware(self, middleware: object, *, outermost: bool = False) -> None:
        """Add `middleware` before the bus is opened: innermost, or `outermost`."""
        self._state.check_new("middleware can only be added")
        self.middleware.insert(0 if outermost else len(self.middleware), middleware)
        check_middleware([middleware], self)
        self._publisher = publisher_of(self)

    @property
    def groups(self) -> dict[str, Group]:
        """The groups registered on this bus, by name."""
        return dict(self._groups)

    @property
    def state(self) -> BusState:
        """``NEW``, ``OPEN`` once started, ``CLOSED`` for good."""
        return self._state

    @property
    def transport_options(self) -> Mapping[str, Any]:
        """The transport-specific options given as ``Bus(url, **options)`` (read-only)."""
        return self._extra

    @property
    def transport(self) -> Transport:
        """The open transport; raises `StateError` when the bus is not open."""
        self._state.check_open(self.name, self._transport)
        assert self._transport is not None
        return self._transport

    def use_transport(self, transport: Transport) -> None:
        """Run this bus on an already built transport (used by `tidings.testing`)."""
        self._state.check_new("the transport can only be replaced")
        self._transport = transport
        self.clock = transport.options.clock
        self._options = replace(self._options, clock=self.clock)
        self._publisher = publisher_of(self)

    def use_database(self, database: Any) -> None:
        """Use `database` for the outbox and inbox instead (used by `tidings.testing`)."""
        self._state.check_new("the database can only be replaced")
        self._outbox = self._outbox.using(database)

    @property
    def database(self) -> Any:
        """The `AsyncEngine` of the application's database (``Bus(database=...)``), or None."""
        return self._outbox.engine

    async def start(self, *, groups: Sequence[str] | None = None) -> None:
        """Connect, declare this bus's groups, and start consumers (unless ``consume=False``).

        `groups` limits the consumers to those groups (all groups are still declared).
        """
        self._state.check_can_start(self.name)
        check_group_names(self._groups, groups)
        self._outbox.check(self._groups.values() if self.consume else ())
        transport = self._transport or build_transport(
            self._factory, self.url, transport_options(self._options, self._extra)
        )
        await transport.open()
        self._transport, self._state = transport, BusState.OPEN
        try:
            if self._groups:
                await self.declare()
            await self._outbox.start(transport, self.clock, self.on_unroutable)
            if self.consume:
                transactions = self._outbox.transactions
                self._workers = Workers(transport, self._options, self._publisher, transactions)
                await self._workers.start(self._groups.values(), groups)
        except BaseException:
            await self.close()
            raise
        logger.info("bus %r open on %s", self.name, mask_url(self.url))

    async def declare(self) -> None:
        """Create this bus's groups and their bindings on the broker (idempotent)."""
        await self.transport.declare([g.spec() for g in self._groups.values()])

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Stop consumers (finishing in-flight handlers for up to `drain_timeout` seconds),
        then disconnect. Safe to call twice."""
        if self._state is BusState.CLOSED:
            return
        self._state = BusState.CLOSED
        if self._workers is not None:
            await self._workers.stop(drain_timeout)
            self._workers = None
        if self._requester is not None:
            await self._requester.close()
        await self._outbox.close()
        if self._transport is not None:
            await self._transport.close()
        logger.info("bus %r closed", self.name)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def publish(
        self,
        event: Message,
        *,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        session: Any = None,
    ) -> str:
        """Publish `event` to every group subscribed to its type; return its id once the
        broker has made it durable.

        `key` orders it (per key, in ``ordered`` groups); `id` replaces the new UUID (a
        retried request reuses it); `headers` are seen as ``ctx.headers``; `delay` is the
        seconds before consumers can take it; `session`, a SQLAlchemy `AsyncSession` of the
        bus's ``database``, stages it in its transaction (the outbox: the relay sends it
        once that commits). Raises `Unroutable` when no group takes it (unless
        ``on_unroutable="ignore"``; staged, it becomes dead in the outbox) and
        `MessageTooLarge` over ``max_message_size``."""
        return await self._publisher.publish(
            event, key=key, id=id, headers=headers, delay=delay, session=session
        )

    async def publish_many(self, events: Iterable[Message], *, session: Any = None) -> list[str]:
        """Publish several events with one confirm (or stage them, see `publish`); return
        their ids in order."""
        return await self._publisher.publish_all(list(events), session=session)

    async def send(
        self,
        command: Message,
        *,
        to: str,
        key: str | None = None,
        id: str | None = None,
        delay: float | None = None,
        session: Any = None,
    ) -> str:
        """Send `command` to the one group `to` (bypassing routing); return its id once it
        is durable. `key`, `id`, `delay`, `session` as for `publish`; `Unroutable` if no `to`."""
        if not to or not isinstance(to, str):
            raise ConfigError("send() needs the target group: send(command, to='group')")
        return await self._publisher.publish(
            command, key=key, id=id, to=to, delay=delay, session=session
        )

    async def request(
        self, command: Message, *, to: str, timeout: float = 30.0, key: str | None = None
    ) -> Any:
        """Send `command` to group `to`; return the message its handler returned (decoded
        into this process's class of that type), or None. Publish-only buses get replies
        too; retries are the handler's. Raises `RequestTimeout` after `timeout` seconds
        without a reply, `RemoteError` when the handler failed for good (dead-lettered)."""
        if self._requester is None:
            transport = lambda: self.transport  # noqa: E731
            self._requester = Requester(self._publisher, transport, source=self.source)
        return await self._requester.request(command, to=to, timeout=timeout, key=key)

    def stage(
        self,
        session: Any,
        message: Message,
        *,
        key: str | None = None,
        to: str | None = None,
        id: str | None = None,
        delay: float | None = None,
    ) -> str:
        """Stage `message` in a synchronous SQLAlchemy `Session`'s transaction (the outbox):
        the relay publishes it (or sends it to group `to`) once that commits; a rollback
        drops it. Return its id at once. Publish middleware does not run for it (nor
        routing checks: an unroutable message becomes dead in the outbox)."""
        out = self._publisher.build(message, key=key, id=id, to=to, delay=delay)
        return self._outbox.stage_sync(session, out)

    async def stats(self) -> list[GroupStats]:
        """Counters and alerts of every group on the broker (what ``tidings queues`` shows)."""
        raw = await self.transport.stats()
        return [evaluate_alerts(s, self.alert_thresholds) for s in raw]

    def dead_letters(self, group: str) -> DeadLetters:
        """The dead-letter queue of `group`."""
        get = self._groups.get
        return DeadLetters(self.transport, group, self.clock.time, self.poison_after, get)

    async def replay(self, group: str, since: datetime | str) -> int:
        """Re-deliver to `group` the retained events published since `since` (a datetime or
        a duration like ``"10m"``, ``"2h"``, ``"1d"``), marked replayed, bypassing dedupe.
        Return how many. Raises `NotSupported` on transports without a log."""
        return await self.transport.replay(group, parse_since(since, self.clock.time()))

    async def outbox_stats(self) -> OutboxStats:
        """Pending and dead messages of this bus's outbox, and the oldest pending's age."""
        return await self._outbox.stats()

    async def ping(self) -> None:
        """Raise `BrokerUnavailable` unless the broker answers."""
        await self.transport.ping()

    def __repr__(self) -> str:
        return f"Bus({mask_url(self.url)!r}, name={self.name!r}, state={self._state.value})"
