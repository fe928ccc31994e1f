"""`OpenTelemetry`: a PRODUCER span per publish, a CONSUMER span per delivery, and W3C trace
context carried in the CloudEvents distributed-tracing extension."""

from __future__ import annotations

import dataclasses
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .. import Context, Envelope, Middleware, Outcome, Publication, __version__
from .._core.middleware import ConsumeNext, PublishNext

__all__ = ["OpenTelemetry", "messaging_system"]

_SYSTEMS = {"amqp": "rabbitmq", "amqps": "rabbitmq", "kafka": "kafka"}
_FAILED = frozenset({"retry", "dead_letter"})


def messaging_system(url: str | None) -> str:
    """The ``messaging.system`` of a bus URL: ``rabbitmq`` for ``amqp://`` and ``amqps://``,
    ``kafka`` for ``kafka://``, ``tidings`` for the embedded broker, ``memory://`` and
    anything else."""
    scheme = (url or "").split("://", 1)[0].lower()
    return _SYSTEMS.get(scheme, "tidings")


def _carrier(envelope: Envelope) -> dict[str, str]:
    carrier = {"traceparent": envelope.traceparent or ""}
    if envelope.tracestate:
        carrier["tracestate"] = envelope.tracestate
    return carrier


class OpenTelemetry(Middleware):
    """OpenTelemetry traces of a bus, after the messaging semantic conventions.

    Every publish is a PRODUCER span ``send <type>`` (``send <group>`` for a command sent
    ``to=`` a group), and every delivery a CONSUMER span ``process <group>``, with the
    attributes ``messaging.system``, ``messaging.destination.name`` (the type, or the
    group), ``messaging.consumer.group.name``, ``messaging.message.id`` and
    ``messaging.operation.type`` (``send`` or ``process``). A delivery whose outcome is a
    retry or a dead letter ends its span with status ERROR and the exception recorded.

    The PRODUCER span's W3C trace context travels in the envelope's ``traceparent`` and
    ``tracestate`` (the CloudEvents distributed-tracing extension), so it survives
    retries, the dead-letter queue and replays from it: each attempt is a child of the
    span that published the event. A delivery replayed from the retained log
    (``bus.replay``) starts a trace of its own with a *link* to that context. Messages a
    handler publishes through ``ctx`` are sent inside its ``process`` span, so they carry
    on its trace.

    It needs only ``opentelemetry-api``; spans are recorded by whatever SDK the application
    configured (none: nothing is recorded, and nothing is added to envelopes).

    Args:
        url: the bus URL, from which ``messaging.system`` is told (see `messaging_system`);
            by default the URL of the bus it is given to (the first one, if several).
        system: ``messaging.system`` as given, instead of telling it from a URL.
        tracer_provider: the provider to take the tracer from (the global one by default).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        system: str | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.system = system or messaging_system(url)
        self._told = system is not None or url is not None
        self.tracer = trace.get_tracer("tidings", __version__, tracer_provider=tracer_provider)
        self._propagator = TraceContextTextMapPropagator()

    def bind(self, bus: Any) -> None:
        """Tell ``messaging.system`` from the bus's URL, unless it was given."""
        if not self._told:
            self.system = messaging_system(str(getattr(bus, "url", "")))
            self._told = True

    async def consume(self, ctx: Context, call_next: ConsumeNext) -> Outcome | None:
        """Run the delivery inside a CONSUMER span, a child (or, replayed, a link) of the
        context its envelope carries."""
        parent: otel_context.Context | None = None
        links: list[Link] | None = None
        if ctx.envelope.traceparent:
            remote = self._propagator.extract(_carrier(ctx.envelope))
            if ctx.replayed:
                origin = trace.get_current_span(remote).get_span_context()
                links = [Link(origin, {"tidings.replayed": True})] if origin.is_valid else None
                parent = otel_context.Context()  # a new trace
            else:
                parent = remote
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": ctx.group,
            "messaging.consumer.group.name": ctx.group,
            "messaging.message.id": ctx.event_id,
            "tidings.event.type": ctx.envelope.type,
            "tidings.delivery.attempt": ctx.attempt,
        }
        if ctx.envelope.correlationid:
            attributes["messaging.message.conversation_id"] = ctx.envelope.correlationid
        if ctx.replayed:
            attributes["tidings.delivery.replayed"] = True
        with self.tracer.start_as_current_span(
            f"process {ctx.group}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        ) as span:
            outcome = await call_next()
            span.set_attribute("tidings.outcome", outcome.kind)
            if outcome.kind in _FAILED:
                if outcome.error is not None:
                    span.set_attribute("error.type", type(outcome.error).__qualname__)
                    span.record_exception(outcome.error)
                span.set_status(Status(StatusCode.ERROR, outcome.reason))
        return None

    async def publish(self, message: Publication, call_next: PublishNext) -> str:
        """Publish inside a PRODUCER span whose context goes into the envelope."""
        parent: otel_context.Context | None = None
        current = trace.get_current_span().get_span_context()
        if message.envelope.traceparent and not current.is_valid:
            # No span here (a handler's context publish without a consume span): carry on
            # the trace of the event that caused it.
            parent = self._propagator.extract(_carrier(message.envelope))
        destination = message.to or message.type
        attributes: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": destination,
            "messaging.message.id": message.id,
            "tidings.event.type": message.type,
        }
        if message.envelope.correlationid:
            attributes["messaging.message.conversation_id"] = message.envelope.correlationid
        with self.tracer.start_as_current_span(
            f"send {destination}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            traceparent = carrier.get("traceparent")
            if traceparent:
                envelope = dataclasses.replace(
                    message.envelope,
                    traceparent=traceparent,
                    tracestate=carrier.get("tracestate"),
                )
                message = message.replace(envelope=envelope)
            return await call_next(message)
