"""Request/reply in the core: what a reply carries, how the caller matches and decodes it,
and the errors a caller gets (the transports' side is the contract's
`RequestReplyContract`)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import eventually
from tidings import (
    Bus,
    Command,
    ConfigError,
    Context,
    Event,
    Middleware,
    RemoteError,
    RequestTimeout,
    Retry,
    StateError,
)
from tidings._clock import ManualClock
from tidings._codec.cloudevents import decode
from tidings._codec.envelope import Envelope, new_envelope
from tidings._core.middleware import Publication, PublishNext
from tidings._core.replies import REPLY_ERROR, REPLY_NONE, Answers, _reply_value
from tidings.testing import TestBus
from tidings.transports import Failure, OutgoingMessage, Transport


class StockCheck(Command, type="stock.check", version=1):
    sku: str


class StockLevel(Event, type="stock.level", version=1):
    sku: str
    units: int


def _url() -> str:
    return f"memory://requests-{uuid.uuid4().hex[:8]}"


def _request_envelope(correlation: str | None = None, id: str = "req-1") -> Envelope:
    cause = None
    if correlation is not None:
        cause = new_envelope(
            id=correlation,
            source="test",
            type="order.placed",
            time=datetime.now(UTC),
            dataversion=1,
            key=None,
            cause=None,
        )
    return new_envelope(
        id=id,
        source="test",
        type="stock.check",
        time=datetime.now(UTC),
        dataversion=1,
        key=None,
        cause=cause,
    )


def _decoded(message: OutgoingMessage) -> tuple[Envelope, Any]:
    return decode(
        routing_key=message.type,
        body=message.body,
        content_type=message.content_type,
        headers=message.headers,
        message_id=message.id,
    )


def _answers(max_size: int = 1 << 20) -> Answers:
    def no_transport() -> Transport:
        raise AssertionError("not sent in this test")

    return Answers(
        no_transport,
        source="test",
        wire="structured",
        clock=ManualClock(),
        max_message_size=max_size,
    )


def test_a_reply_carries_the_requests_id_as_causation_and_its_correlation() -> None:
    answers = _answers()
    request = _request_envelope(correlation="order-7")
    reply = answers.of_result(request, StockLevel(sku="a", units=3))
    envelope, data = _decoded(reply)
    assert envelope.type == "stock.level"
    assert envelope.causationid == "req-1"
    assert envelope.correlationid == "order-7"
    assert data == {"sku": "a", "units": 3}
    # A request handled twice answers with the same id (a caller drops the repeat).
    assert answers.of_result(request, StockLevel(sku="a", units=3)).id == reply.id
    # Without a correlation of its own, the request's id is the correlation.
    plain = answers.of_result(_request_envelope(), None)
    envelope, _ = _decoded(plain)
    assert (envelope.type, envelope.correlationid) == (REPLY_NONE, "req-1")


def test_a_reply_over_the_size_limit_becomes_a_failure_reply() -> None:
    answers = _answers(max_size=300)
    reply = answers.of_result(_request_envelope(), StockLevel(sku="x" * 400, units=1))
    assert reply.type == REPLY_ERROR
    assert b"over the limit" in reply.body


async def test_the_caller_takes_the_first_reply_and_drops_a_repeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a worker and a caller whose first request was answered
    bus = Bus(_url())
    requests: list[str] = []

    @bus.subscribe("stock.check", group="stock")
    async def check(request: StockCheck, ctx: Context) -> StockLevel:
        requests.append(ctx.event_id)
        return StockLevel(sku=request.sku, units=len(requests))

    caplog.set_level(logging.DEBUG, logger="tidings._core.replies")
    async with bus:
        reply = await bus.request(StockCheck(sku="a"), to="stock", timeout=5)
        assert isinstance(reply, StockLevel)
        assert reply.units == 1
        # When the same reply arrives again (the request redelivered and answered again)
        requester = bus._requester
        assert requester is not None
        inbox = await requester._open()
        again = _answers().of_result(_request_envelope(id=requests[0]), reply)
        await bus.transport.send_reply(inbox.address, again)
        # Then it is dropped, and the next request gets its own reply
        await eventually(lambda: "dropped a late or repeated reply" in caplog.text)
        second = await bus.request(StockCheck(sku="b"), to="stock", timeout=5)
        assert isinstance(second, StockLevel)
        assert (second.sku, second.units) == ("b", 2)
    assert requester._waiting == {}


async def test_a_handler_answering_with_something_else_fails_the_request() -> None:
    bus = Bus(_url())

    @bus.subscribe("stock.check", group="stock")
    async def check(request: StockCheck) -> int:
        return 42

    async with bus:
        with pytest.raises(RemoteError) as failed:
            await bus.request(StockCheck(sku="a"), to="stock", timeout=5)
    assert "answered a request with a int" in failed.value.message
    assert failed.value.exception_type is None


def test_a_reply_of_a_type_no_class_declares_is_a_clear_error() -> None:
    envelope = new_envelope(
        id="rep-1",
        source="elsewhere",
        type="reply.nobody.declares",
        time=datetime.now(UTC),
        dataversion=1,
        key=None,
        cause=_request_envelope(),
    )
    with pytest.raises(ConfigError, match="no message class in this process declares"):
        _reply_value(envelope, {}, "req-1")
    # A reply that does not fit its class is one too.
    envelope = dataclasses.replace(envelope, type="stock.level")
    with pytest.raises(ConfigError, match="does not fit StockLevel"):
        _reply_value(envelope, {"sku": "a"}, "req-1")


async def test_bad_requests_are_refused_with_a_clear_error() -> None:
    bus = Bus(_url(), on_unroutable="ignore")
    with pytest.raises(StateError):
        await bus.request(StockCheck(sku="a"), to="stock")
    async with bus:
        with pytest.raises(ConfigError, match="to="):
            await bus.request(StockCheck(sku="a"), to="")
        with pytest.raises(ConfigError, match="positive"):
            await bus.request(StockCheck(sku="a"), to="stock", timeout=0)
        with pytest.raises(ConfigError, match="Event or Command"):
            await bus.request("not a message", to="stock")  # type: ignore[arg-type]
        with pytest.raises(RequestTimeout) as late:
            await bus.request(StockCheck(sku="a"), to="stock", timeout=0.05)
    assert late.value.request_id
    assert isinstance(late.value, TimeoutError)


async def test_requests_go_through_publish_middleware() -> None:
    seen: list[tuple[str, str | None]] = []

    class Watch(Middleware):
        async def publish(self, message: Publication, call_next: PublishNext) -> str:
            seen.append((message.type, message.reply_to))
            return await call_next(message)

    bus = Bus(_url(), middleware=[Watch()])

    @bus.subscribe("stock.check", group="stock")
    async def check(request: StockCheck) -> StockLevel:
        return StockLevel(sku=request.sku, units=1)

    async with bus:
        await bus.request(StockCheck(sku="a"), to="stock", timeout=5)
    assert len(seen) == 1
    assert seen[0][0] == "stock.check"
    assert seen[0][1] is not None


async def test_the_test_bus_answers_requests_with_retries_on_its_clock() -> None:
    bus = Bus("sqlite:///never-written.db")
    runs: list[int] = []

    @bus.subscribe("stock.check", group="stock", retry=Retry(attempts=3, base=10.0))
    async def check(request: StockCheck) -> StockLevel:
        runs.append(1)
        if len(runs) == 1:
            raise ConnectionError("the warehouse did not answer")
        return StockLevel(sku=request.sku, units=5)

    async with TestBus(bus) as tb:
        pending = asyncio.ensure_future(bus.request(StockCheck(sku="a"), to="stock", timeout=5))
        await tb.drain(retries=True)  # the retry waits for the test clock, not for real time
        reply = await pending
    assert isinstance(reply, StockLevel)
    assert reply.units == 5
    assert len(runs) == 2
    assert tb.dead_lettered == []


def test_failure_replies_name_the_remote_exception() -> None:
    answers = _answers()
    failure = Failure("ValueError: bad sku", "builtins.ValueError", "bad sku", "", 0.0)
    reply = answers.of_failure(_request_envelope(), failure)
    assert reply.type == REPLY_ERROR
    _, data = _decoded(reply)
    assert data == {
        "exception_type": "builtins.ValueError",
        "message": "bad sku",
        "reason": "ValueError: bad sku",
    }
