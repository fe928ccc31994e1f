"""The `Bus`: the façade users touch — subscribe, publish, send, inspect, run."""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from .._clock import Clock, SystemClock
from .._codec.cloudevents import encode
from .._codec.envelope import JSON_CONTENT_TYPE, SPECVERSION, Envelope, make_envelope, new_event_id
from .._exceptions import ConfigError, MessageTooLarge, StateError, Unroutable
from ..transports._message import Delivery, OutgoingMessage
from ..transports._options import TransportOptions
from ..transports._registry import open_transport
from ..transports._stats import GroupStats
from ..transports._transport import Consumer, DedupeStore, Deliver, Transport
from ..transports._urls import mask_url
from .context import Context, Pending
from .dlq import DeadLetters
from .duration import parse_since
from .messages import Message, message_type_of
from .pipeline import Pipeline, build_chain
from .retry import Retry
from .stats import AlertThresholds, evaluate_alerts
from .subscription import Group, HandlerFunc, registry_add
from .url import resolve_url

__all__ = ["Bus"]

logger = logging.getLogger("tidings")

MiB = 1024 * 1024


class BusState(enum.Enum):
    """Lifecycle of a bus: it opens once and closes once."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class _Draft:
    """A message ready for the publish middleware: envelope, data and routing options."""

    envelope: Envelope
    data_json: bytes
    key: str | None
    group: str | None
    headers: Mapping[str, str] | None
    delay: float | None


def _default_source() -> str:
    program = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "python"
    return f"tidings://{socket.gethostname()}/{program or 'python'}"


class Bus:
    """A connection to one broker namespace, with the subscribers registered on it.

    Args:
        url: ``sqlite:///tidings.db`` (embedded broker), ``memory://``, ``amqp://...``;
            None reads ``TIDINGS_URL``, else uses ``sqlite:///tidings.db``.
        name: the namespace (RabbitMQ exchange, queue prefix).
        source: CloudEvents ``source`` of what this bus publishes.
        consume: False makes a publish-only bus even when it has subscribers.
        middleware: objects with ``consume(ctx, call_next)`` and/or
            ``publish(envelope, call_next)`` coroutines.
        on_unroutable: ``"error"`` raises `Unroutable` when nothing receives a publish;
            ``"ignore"`` accepts it.
        max_message_size: largest encoded message in bytes (default 1 MiB).
        lease: seconds a delivery stays claimed before it returns (embedded broker).
        retention: seconds published events stay in the retained log (embedded broker).
        dedupe: URL of an external dedupe store, for transports without their own.
        wire: ``"structured"`` or ``"binary"`` CloudEvents mode.
        dedupe_ttl: seconds a dedupe marker lives (default 24 h).
        clock: time source; tests pass a `ManualClock`.
        alert_thresholds: thresholds for the alerts in `stats`.
        **options: transport-specific options.
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
        **options: Any,
    ) -> None:
        if on_unroutable not in ("error", "ignore"):
            raise ConfigError(f"on_unroutable must be 'error' or 'ignore', not {on_unroutable!r}")
        if wire not in ("structured", "binary"):
            raise ConfigError(f"wire must be 'structured' or 'binary', not {wire!r}")
        for option, value in (("max_message_size", max_message_size), ("lease", lease)):
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{option} must be a positive number, not {value!r}")
        self.url = resolve_url(url)
        self.name = name
        self.source = source or _default_source()
        self.consume = consume
        self.middleware = list(middleware)
        self.on_unroutable = on_unroutable
        self.max_message_size = int(max_message_size)
        self.wire = wire
        self.clock = clock or SystemClock()
        self.alert_thresholds = alert_thresholds
        self._options = TransportOptions(
            name=name,
            lease=float(lease),
            retention=float(retention),
            max_message_size=self.max_message_size,
            dedupe_url=dedupe,
            dedupe_ttl=float(dedupe_ttl),
            clock=self.clock,
            extra=options,
        )
        self._transport: Transport | None = None
        self._groups: dict[str, Group] = {}
        self._consumers: list[Consumer] = []
        self._pipelines: list[Pipeline] = []
        self._dedupe: DedupeStore | None = None
        self._state = BusState.NEW

    # -- registration ----------------------------------------------------------------------

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
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Register an async handler for events whose type matches `pattern`.

        `group` defaults to ``module.function`` of the handler. `concurrency` and `ordered`
        are settings of the group. The handler takes ``(event)`` or ``(event, ctx)``; the
        event is validated into the first parameter's annotation.
        """
        if self._state is not BusState.NEW:
            raise StateError("subscribe handlers before the bus is opened")

        def register(func: HandlerFunc) -> HandlerFunc:
            registry_add(
                self._groups,
                pattern=pattern,
                func=func,
                group=group,
                retry=retry,
                concurrency=concurrency,
                idempotent=idempotent,
                ordered=ordered,
                timeout=timeout,
            )
            return func

        return register

    @property
    def groups(self) -> dict[str, Group]:
        """The groups registered on this bus, by name."""
        return dict(self._groups)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def state(self) -> BusState:
        return self._state

    @property
    def transport(self) -> Transport:
        """The open transport; raises `StateError` when the bus is not open."""
        if self._state is not BusState.OPEN or self._transport is None:
            raise StateError(
                f"bus {self.name!r} is {self._state.value}: use 'async with bus:' "
                "or 'await bus.start()' first"
            )
        return self._transport

    def use_transport(self, transport: Transport) -> None:
        """Run this bus on an already built transport (used by `tidings.testing`)."""
        if self._state is not BusState.NEW:
            raise StateError("the transport can only be replaced before the bus is opened")
        self._transport = transport
        self.clock = transport.options.clock

    async def start(self, *, groups: Sequence[str] | None = None) -> None:
        """Connect, declare this bus's groups, and start consumers (unless ``consume=False``).

        `groups` limits the consumers to those groups (all groups are still declared).
        """
        if self._state is BusState.OPEN:
            raise StateError(f"bus {self.name!r} is already open")
        if self._state is BusState.CLOSED:
            raise StateError(f"bus {self.name!r} is closed; create a new Bus")
        unknown = sorted(set(groups or ()) - set(self._groups))
        if unknown:
            raise ConfigError(
                f"no group named {', '.join(map(repr, unknown))} on this bus; "
                f"it has {', '.join(map(repr, sorted(self._groups))) or 'none'}"
            )
        transport = self._transport or open_transport(self.url, self._options)
        await transport.open()
        self._transport = transport
        self._state = BusState.OPEN
        try:
            if self._groups:
                await self.declare()
            if self.consume:
                await self._start_consumers(groups)
        except BaseException:
            await self.close()
            raise
        logger.info("bus %r open on %s", self.name, mask_url(self.url))

    def _dedupe_for(self, group: Group) -> DedupeStore | None:
        if not group.idempotent:
            return None
        if self._dedupe is None:
            self._dedupe = self.transport.dedupe_store() or self._external_dedupe()
        return self._dedupe

    def _external_dedupe(self) -> DedupeStore:
        url = self._options.dedupe_url
        if not url:
            raise ConfigError(
                f"idempotent=True needs a dedupe store: the {self.transport.scheme}:// transport "
                "has none of its own; pass Bus(dedupe='redis://host:6379/0')"
            )
        from .dedupe import open_dedupe_store

        return open_dedupe_store(url, namespace=self._options.name)

    async def _start_consumers(self, only: Sequence[str] | None) -> None:
        transport = self.transport
        for group in self._groups.values():
            if only and group.name not in only:
                continue
            pipeline = Pipeline(
                group,
                transport=transport,
                dedupe=self._dedupe_for(group),
                dedupe_ttl=self._options.dedupe_ttl,
                middleware=self.middleware,
                flush=self._flush,
                clock=self.clock,
                source=self.source,
            )
            self._pipelines.append(pipeline)
            self._consumers.append(await transport.consume(group.spec(), _guarded(pipeline)))

    async def declare(self) -> None:
        """Create this bus's groups and their bindings on the broker (idempotent)."""
        await self.transport.declare([g.spec() for g in self._groups.values()])

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Stop consumers (finishing in-flight handlers for up to `drain_timeout` seconds),
        then disconnect. Safe to call twice."""
        if self._state is BusState.CLOSED:
            return
        self._state = BusState.CLOSED
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.stop(drain_timeout) for c in consumers), return_exceptions=True)
        pipelines, self._pipelines = self._pipelines, []
        for pipeline in pipelines:
            await pipeline.close()
        own = self._transport.dedupe_store() if self._transport is not None else None
        if self._dedupe is not None and self._dedupe is not own:
            await self._dedupe.close()
        if self._transport is not None:
            await self._transport.close()
        logger.info("bus %r closed", self.name)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- publishing ------------------------------------------------------------------------

    def _draft(
        self,
        message: Message,
        *,
        key: str | None,
        id: str | None,
        group: str | None,
        headers: Mapping[str, str] | None,
        delay: float | None,
        cause: Envelope | None = None,
    ) -> _Draft:
        mtype, version = message_type_of(message)
        if key is not None and not isinstance(key, str):
            key = str(key)
        envelope = make_envelope(
            id or new_event_id(),
            self.source,
            mtype,
            SPECVERSION,
            datetime.fromtimestamp(self.clock.time(), UTC),
            JSON_CONTENT_TYPE,
            None,
            None,
            version,
            (cause.correlationid or cause.id) if cause else None,
            cause.id if cause else None,
            key,
            cause.traceparent if cause else None,
            cause.tracestate if cause else None,
            None,
        )
        data_json = message.__pydantic_serializer__.to_json(message)
        return _Draft(envelope, data_json, key, group, headers, delay)

    def _outgoing(self, draft: _Draft) -> OutgoingMessage:
        body, content_type, ce_headers = encode(draft.envelope, draft.data_json, self.wire)
        if len(body) > self.max_message_size:
            raise MessageTooLarge(
                f"{draft.envelope.type} message {draft.envelope.id} is {len(body):,} bytes, "
                f"over the limit of {self.max_message_size:,} (Bus(max_message_size=...))"
            )
        headers = {**draft.headers, **ce_headers} if draft.headers else ce_headers
        return OutgoingMessage(
            id=draft.envelope.id,
            type=draft.envelope.type,
            body=body,
            content_type=content_type,
            headers=headers,
            key=draft.key,
            delay=float(draft.delay or 0.0),
            group=draft.group,
            published_at=self.clock.time(),
        )

    async def _build(self, draft: _Draft) -> OutgoingMessage:
        if not self.middleware:
            return self._outgoing(draft)

        async def with_envelope(envelope: Envelope) -> OutgoingMessage:
            return self._outgoing(replace(draft, envelope=envelope))

        chain = build_chain(self.middleware, "publish", with_envelope)
        result = await chain(draft.envelope)
        if not isinstance(result, OutgoingMessage):
            raise ConfigError("a publish middleware must return what call_next returned")
        return result

    async def _send(self, messages: list[OutgoingMessage]) -> list[str]:
        routed = await self.transport.publish(messages)
        self._check_routed(messages, routed)
        return [m.id for m in messages]

    def _check_routed(self, messages: list[OutgoingMessage], routed: list[bool]) -> None:
        if self.on_unroutable == "error" and not all(routed):
            lost = [m for m, ok in zip(messages, routed, strict=True) if not ok]
            if lost:
                first = lost[0]
                if first.group is not None:
                    raise Unroutable(
                        f"no group named {first.group!r} on bus {self.name!r} to send "
                        f"{first.type!r} to; start its workers (or await bus.declare()) first"
                    )
                raise Unroutable(
                    f"no group subscribes to {first.type!r} on bus {self.name!r}; start the "
                    "workers (or await bus.declare()) before publishing, or "
                    "Bus(on_unroutable='ignore')"
                )

    async def publish(
        self,
        event: Message,
        *,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
    ) -> str:
        """Publish `event` to every group subscribed to its type; return its id once the
        broker has made it durable."""
        draft = self._draft(event, key=key, id=id, group=None, headers=headers, delay=delay)
        # The common case without middleware, without the extra awaits of `_build`/`_send`.
        out = [self._outgoing(draft) if not self.middleware else await self._build(draft)]
        self._check_routed(out, await self.transport.publish(out))
        return out[0].id

    async def publish_many(self, events: Iterable[Message]) -> list[str]:
        """Publish several events with one confirm; return their ids in order."""
        drafts = [
            self._draft(e, key=None, id=None, group=None, headers=None, delay=None) for e in events
        ]
        if not drafts:
            return []
        return await self._send([await self._build(d) for d in drafts])

    async def send(
        self,
        command: Message,
        *,
        to: str,
        key: str | None = None,
        id: str | None = None,
        delay: float | None = None,
    ) -> str:
        """Send `command` to the one group `to`; return its id once it is durable."""
        if not to or not isinstance(to, str):
            raise ConfigError("send() needs the target group: send(command, to='group')")
        draft = self._draft(command, key=key, id=id, group=to, headers=None, delay=delay)
        return (await self._send([await self._build(draft)]))[0]

    async def _flush(self, ctx: Context) -> None:
        """Send what a handler published through its context (after it succeeded)."""
        pending: tuple[Pending, ...] = ctx.pending
        if not pending:
            return
        drafts = [
            self._draft(
                p.message,
                key=p.key,
                id=p.id,
                group=p.to,
                headers=p.headers,
                delay=p.delay,
                cause=ctx.envelope,
            )
            for p in pending
        ]
        await self._send([await self._build(d) for d in drafts])

    # -- operations ------------------------------------------------------------------------

    async def stats(self) -> list[GroupStats]:
        """Counters and alerts of every group on the broker."""
        raw = await self.transport.stats()
        return [evaluate_alerts(s, self.alert_thresholds) for s in raw]

    def dead_letters(self, group: str) -> DeadLetters:
        """The dead-letter queue of `group`."""
        return DeadLetters(self.transport, group, self.clock.time)

    async def replay(self, group: str, since: datetime | str) -> int:
        """Re-deliver to `group` the retained events published since `since` (a datetime or
        a duration like ``"10m"``, ``"2h"``, ``"1d"``). Raises `NotSupported` on transports
        without a log."""
        return await self.transport.replay(group, parse_since(since, self.clock.time()))

    async def ping(self) -> None:
        """Raise `BrokerUnavailable` unless the broker answers."""
        await self.transport.ping()

    def __repr__(self) -> str:
        return f"Bus({mask_url(self.url)!r}, name={self.name!r}, state={self._state.value})"


def _guarded(pipeline: Pipeline) -> Deliver:
    """Wrap a pipeline so an unexpected error is logged and never takes the worker down."""

    async def deliver(delivery: Delivery) -> None:
        try:
            await pipeline(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "could not settle %s %s in %s; it returns to the group when its lease ends",
                delivery.type,
                delivery.id,
                delivery.group,
            )

    return deliver
