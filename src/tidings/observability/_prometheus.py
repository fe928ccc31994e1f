"""`Prometheus`: the metrics middleware, and the gauges read from a bus's statistics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from .. import Context, Middleware, Outcome, Publication
from .._core.middleware import ConsumeNext, PublishNext
from ..transports import Clock, SystemClock
from ._metrics import Metrics, metrics_for

if TYPE_CHECKING:
    from .. import Bus

__all__ = ["Prometheus", "saga_completed"]

logger = logging.getLogger(__name__)


def error_type(error: BaseException | None) -> str:
    """The `error_type` label: the exception's class name, ``"none"`` without one."""
    return type(error).__name__ if error is not None else "none"


def saga_completed(
    saga_type: str,
    status: str,
    duration: float,
    *,
    registry: CollectorRegistry | None = None,
) -> None:
    """Count a completed saga instance and observe how long it ran.

    The saga engine calls it when an instance completes; `status` is the one given to
    ``ctx.complete(status=...)`` (a small, fixed set per saga, like ``"completed"`` or
    ``"compensated"``).

    Args:
        saga_type: the saga's name (``Saga`` subclass ``name=``).
        status: the status it completed with.
        duration: seconds from its start to its completion.
        registry: the Prometheus registry (the global one by default).
    """
    metrics = metrics_for(registry)
    metrics.saga_completions.labels(saga_type, status).inc()
    metrics.saga_duration.labels(saga_type).observe(max(0.0, duration))


class Prometheus(Middleware):
    """Prometheus metrics of a bus: what it publishes and consumes, and its groups.

    Give it to the bus (``Bus(url, middleware=[Prometheus()])``, outermost first so it sees
    the outcome that is settled) and expose the registry as you do for the rest of the
    application, e.g. ``prometheus_client.start_http_server(9464)`` or the ASGI app of
    ``prometheus_client.make_asgi_app()``. ``tidings run --metrics-port P`` does all of this
    for its worker processes.

    Recorded per message, by the middleware hooks:

    - ``tidings_events_published_total{event_type,status}``: ``status`` is ``success`` once
      the broker confirmed it, ``failure`` when the publish raised.
    - ``tidings_event_processing_duration_seconds{group,event_type,outcome}``: a histogram
      of the time the rest of the stack took (handler, retries' bookkeeping, the messages
      the handler published); ``outcome`` is the kind of the settled `Outcome`: ``ack``,
      ``retry``, ``dead_letter``, ``duplicate``, or ``postpone`` (tried later without
      counting an attempt: another copy was in flight, the dedupe store was down).
    - ``tidings_event_consumer_lag_seconds{group}``: a histogram of now minus the event's
      ``time``, observed on first deliveries (a retry's or a replay's age is not lag). A
      histogram rather than a gauge: it adds up over worker processes, keeps every
      delivery rather than the last one, and gives quantiles.
    - ``tidings_dlq_events_total{group,event_type,error_type}``: ``error_type`` is the class
      name of the exception behind the dead letter, ``none`` when there was none (an
      undecodable message).

    Read from the bus by `refresh` (``tidings run`` calls it every few seconds), labelled
    ``group``: ``tidings_group_ready``, ``tidings_group_in_flight``,
    ``tidings_group_scheduled``, ``tidings_group_dead``, ``tidings_group_consumers`` and
    ``tidings_group_oldest_age_seconds``; and, for a bus with an outbox,
    ``tidings_outbox_pending`` and ``tidings_outbox_oldest_age_seconds`` (declared without
    a value until then).

    Sagas report ``tidings_saga_completions_total{saga_type,status}`` and
    ``tidings_saga_duration_seconds{saga_type}`` through `saga_completed`.

    Args:
        registry: the Prometheus registry to record on (the global one by default; tests
            pass their own ``CollectorRegistry()``).
        clock: the time source of the lag (the system clock by default).
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = None, clock: Clock | None = None
    ) -> None:
        self.metrics: Metrics = metrics_for(registry)
        self.clock = clock or SystemClock()
        # Label children by their values: `labels()` validates its arguments on every call.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._groups_seen: set[str] = set()

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    async def consume(self, ctx: Context, call_next: ConsumeNext) -> Outcome | None:
        """Time the delivery and count its outcome."""
        envelope = ctx.envelope
        if ctx.attempt == 1 and not ctx.replayed and envelope.time is not None:
            lag = self.clock.time() - envelope.time.timestamp()
            self._child(self.metrics.lag, ctx.group).observe(max(0.0, lag))
        start = time.perf_counter()
        outcome = await call_next()
        elapsed = time.perf_counter() - start
        kind = outcome.kind
        self._child(self.metrics.processing, ctx.group, envelope.type, kind).observe(elapsed)
        if kind == "dead_letter":
            dlq = self._child(self.metrics.dlq, ctx.group, envelope.type, error_type(outcome.error))
            dlq.inc()
        return None

    async def publish(self, message: Publication, call_next: PublishNext) -> str:
        """Count the publish as a success once confirmed, or a failure when it raised."""
        try:
            event_id = await call_next(message)
        except Exception:
            self._child(self.metrics.published, message.type, "failure").inc()
            raise
        self._child(self.metrics.published, message.type, "success").inc()
        return event_id

    def saga_completed(self, saga_type: str, status: str, duration: float) -> None:
        """Count a completed saga on this middleware's registry (see `saga_completed`)."""
        saga_completed(saga_type, status, duration, registry=self.metrics.registry)

    async def refresh(self, bus: Bus) -> None:
        """Read `bus.stats()` (and its outbox's, when it has one) into the gauges.

        A group that is gone from the broker loses its gauges. Raises what the bus raised
        (a broker that cannot be reached).
        """
        stats = await bus.stats()
        gauges = self.metrics.groups
        seen = set()
        for s in stats:
            seen.add(s.group)
            for field_name, gauge in gauges.items():
                self._child(gauge, s.group).set(getattr(s, field_name))
        for gone in self._groups_seen - seen:
            for gauge in gauges.values():
                self._children.pop((id(gauge), gone), None)
                with contextlib.suppress(KeyError):  # another middleware removed it
                    gauge.remove(gone)
        self._groups_seen = seen
        await self._refresh_outbox(bus)

    async def _refresh_outbox(self, bus: Bus) -> None:
        # The outbox is an optional feature of a bus with a `database`; its statistics are
        # read only where both exist.
        read = getattr(bus, "outbox_stats", None)
        if read is None or getattr(bus, "database", None) is None:
            return
        outbox = await read()
        gauges = self.metrics.outbox()
        gauges.pending.set(outbox.pending)
        gauges.oldest_age.set(outbox.oldest_age)

    async def watch(self, bus: Bus, interval: float = 15.0) -> None:
        """`refresh` from `bus` every `interval` seconds until cancelled.

        A failed refresh (the broker is down) is logged as a WARNING, once until one
        succeeds again, and the gauges keep their last values.
        """
        failing = False
        while True:
            try:
                await self.refresh(bus)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    logger.warning("could not read the statistics of bus %r: %s", bus.name, exc)
                failing = True
            else:
                if failing:
                    logger.info("reading the statistics of bus %r again", bus.name)
                failing = False
            await asyncio.sleep(interval)
