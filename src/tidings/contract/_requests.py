"""Contract: request/reply (`Bus.request`), at the bus and at the transport level."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from typing import Any

import pytest

from .._core.bus import Bus
from .._core.retry import Retry
from .._exceptions import NotSupported, Permanent, RemoteError, RequestTimeout
from ..transports._group import GroupSpec
from ..transports._message import Delivery, OutgoingMessage
from ._events import PriceGiven, PriceQuote
from ._harness import FixedDelay, Harness, Inbox

__all__ = ["ReplyTransportContract", "RequestReplyContract"]

COUNT = 50


async def has_replies(harness: Harness) -> bool:
    """True when the transport opens reply inboxes; False when it raises `NotSupported`."""
    transport = await harness.make_transport()
    try:
        inbox = await transport.open_replies(lambda delivery: None)
    except NotSupported:
        return False
    await inbox.close()
    return True


def pricing(bus: Bus, runs: list[str] | None = None, **options: Any) -> None:
    """Subscribe the pricing handler: 100 cents per unit, recording each run's sku."""

    @bus.subscribe("price.quote", group="pricing", **options)
    async def quote(request: PriceQuote) -> PriceGiven:
        if runs is not None:
            runs.append(request.sku)
        await asyncio.sleep(0)  # let concurrent requests interleave
        return PriceGiven(sku=request.sku, cents=request.quantity * 100)


async def finished(harness: Harness, call: Awaitable[Any], timeout: float) -> Any:
    """Run `call` in a task and wait for it the harness's way (a harness on a manual clock
    moves the clock, so retries of the request fall due); return or raise what it did."""
    task = asyncio.ensure_future(call)
    try:
        await harness.wait_until(task.done, timeout=timeout, what="the request's outcome")
    finally:
        if not task.done():
            task.cancel()
    return task.result()


class RequestReplyContract:
    """``bus.request(command, to=group)``: the handler's return value comes back."""

    async def test_concurrent_requests_from_a_publish_only_bus_get_their_own_replies(
        self, harness: Harness
    ) -> None:
        worker = harness.make_bus()
        pricing(worker)
        caller = harness.make_bus(consume=False)
        if not await has_replies(harness):
            await caller.start()
            with pytest.raises(NotSupported):
                await caller.request(PriceQuote(sku="s-1"), to="pricing", timeout=5)
            return
        await worker.start()
        await caller.start()
        wait = harness.timeout * 3
        calls = [
            caller.request(PriceQuote(sku=f"s-{n}", quantity=n), to="pricing", timeout=wait)
            for n in range(COUNT)
        ]
        replies = await finished(harness, asyncio.gather(*calls), wait)
        assert all(isinstance(r, PriceGiven) for r in replies)
        assert [(r.sku, r.cents) for r in replies] == [(f"s-{n}", n * 100) for n in range(COUNT)]

    async def test_requests_from_another_process_get_their_own_replies(
        self, harness: Harness
    ) -> None:
        if not harness.crosses_processes or not await has_replies(harness):
            return  # in one process, and NotSupported, are the test above
        worker = harness.make_bus()
        pricing(worker)
        await worker.start()
        wait = harness.timeout * 3
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tidings.contract._requester",
            harness.url,
            json.dumps(harness.process_options()),
            "pricing",
            str(COUNT),
            str(wait),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), wait + 30)
        assert process.returncode == 0, err.decode()[-2000:]
        report = json.loads(out.decode().strip().splitlines()[-1])
        assert report["errors"] == []
        assert report["replies"] == [[f"s-{n}", n * 100] for n in range(COUNT)]

    async def test_a_handler_that_fails_for_good_raises_remote_error(
        self, harness: Harness
    ) -> None:
        if not await has_replies(harness):
            return
        runs: list[str] = []
        worker = harness.make_bus()

        @worker.subscribe("price.quote", group="pricing", retry=FixedDelay(attempts=3, base=0.02))
        async def quote(request: PriceQuote) -> PriceGiven:
            runs.append(request.sku)
            if request.sku == "gone":
                raise Permanent(f"no such sku {request.sku}")
            raise LookupError(f"no price for {request.sku}")

        await worker.start()
        caller = harness.make_bus(consume=False)
        await caller.start()
        wait = harness.timeout * 3
        with pytest.raises(RemoteError) as failed:
            await finished(harness, caller.request(PriceQuote(sku="x-1"), to="pricing"), wait)
        assert failed.value.exception_type == "builtins.LookupError"
        assert failed.value.message == "no price for x-1"
        assert runs == ["x-1"] * 3  # the handler's retry policy, then the dead-letter queue
        with pytest.raises(RemoteError) as gone:
            await finished(harness, caller.request(PriceQuote(sku="gone"), to="pricing"), wait)
        assert gone.value.message == "no such sku gone"
        assert runs.count("gone") == 1
        dead = await worker.dead_letters("pricing").list()
        assert {d.event_id for d in dead} == {failed.value.request_id, gone.value.request_id}

    async def test_no_reply_in_time_raises_request_timeout_and_the_late_reply_is_dropped(
        self, harness: Harness
    ) -> None:
        if not await has_replies(harness):
            return
        caller = harness.make_bus(consume=False)
        pricing(caller)  # declares the group; a publish-only bus runs no worker
        await caller.start()
        with pytest.raises(RequestTimeout) as late:
            await caller.request(PriceQuote(sku="late"), to="pricing", timeout=0.3)
        assert late.value.to == "pricing"
        assert late.value.timeout == 0.3
        runs: list[str] = []
        worker = harness.make_bus()
        pricing(worker, runs)
        await worker.start()
        wait = harness.timeout * 3
        reply = await finished(harness, caller.request(PriceQuote(sku="next"), to="pricing"), wait)
        assert isinstance(reply, PriceGiven)
        assert reply.sku == "next"
        await harness.wait_until(lambda: "late" in runs, what="the late request handled")

    async def test_a_worker_stopped_mid_request_leaves_it_to_the_next_one_answer_once(
        self, harness: Harness
    ) -> None:
        if not await has_replies(harness):
            return
        started, never = asyncio.Event(), asyncio.Event()
        first = harness.make_bus()

        @first.subscribe("price.quote", group="pricing", retry=Retry(attempts=5, base=0.01))
        async def stuck(request: PriceQuote) -> PriceGiven:
            started.set()
            await never.wait()
            return PriceGiven(sku=request.sku, cents=-1)

        await first.start()
        caller = harness.make_bus(consume=False)
        await caller.start()
        wait = harness.timeout * 3
        task = asyncio.ensure_future(
            caller.request(PriceQuote(sku="r-1", quantity=2), to="pricing", timeout=wait)
        )
        await harness.wait_until(started.is_set, what="the first worker's handler")
        await first.close(drain_timeout=0.05)  # stopped mid-handler: the request goes back
        runs: list[str] = []
        second = harness.make_bus()
        pricing(second, runs)
        await second.start()
        reply = await finished(harness, task, wait)
        assert isinstance(reply, PriceGiven)
        assert (reply.sku, reply.cents) == ("r-1", 200)
        assert runs == ["r-1"]
        # The caller's inbox still serves new requests.
        again = await finished(harness, caller.request(PriceQuote(sku="r-2"), to="pricing"), wait)
        assert isinstance(again, PriceGiven)
        assert again.sku == "r-2"


class ReplyTransportContract:
    """`Transport.open_replies` and `send_reply`: a request's ``reply_to`` reaches the
    handler's side, and an answer sent there reaches the inbox (or is dropped once closed)."""

    async def test_a_reply_sent_to_a_requests_reply_to_reaches_the_inbox(
        self, harness: Harness
    ) -> None:
        transport = await harness.make_transport()
        replies: list[Delivery] = []
        try:
            inbox = await transport.open_replies(replies.append)
        except NotSupported:
            return  # raising it is what a transport without request/reply must do
        spec = GroupSpec("pricing", ("price.quote",))
        await transport.declare([spec])
        request = OutgoingMessage(
            id="req-1",
            type="price.quote",
            body=b'{"sku": "s-1"}',
            content_type="application/json",
            group="pricing",
            reply_to=inbox.address,
        )
        assert await transport.publish([request]) == [True]
        got = Inbox(transport, auto_ack=True)
        await transport.consume(spec, got)
        await harness.wait_until(lambda: len(got.got) == 1, what="the request")
        address = got.got[0].reply_to
        assert address is not None
        answer = OutgoingMessage(
            id="rep-1", type="price.given", body=b'{"cents": 100}', content_type="application/json"
        )
        await transport.send_reply(address, answer)
        await harness.wait_until(lambda: len(replies) == 1, what="the reply")
        assert (replies[0].id, replies[0].type, replies[0].body) == (
            "rep-1",
            "price.given",
            b'{"cents": 100}',
        )
        await inbox.close()
        await inbox.close()  # safe twice
        await transport.send_reply(address, answer)  # nobody waits: dropped, no error
        assert len(replies) == 1
