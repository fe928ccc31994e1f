"""Acks queued without waiting (`ack_soon`, what the pipeline uses) are committed together,
before a consumer or the transport closes, and a failed commit loses nothing."""

from __future__ import annotations

import logging

import pytest

from tests.support import Inbox, eventually
from tidings.transports import Delivery, GroupSpec
from tidings.transports.sqlite._consume_ops import AckOp

from .conftest import OpenTransport, message


def _soon(transport):  # type: ignore[no-untyped-def]
    async def settle(delivery: Delivery) -> None:
        assert transport.ack_soon(delivery) is True

    return settle


async def test_queued_acks_are_committed_before_the_transport_closes(
    open_transport: OpenTransport,
) -> None:
    # Given 200 deliveries acked without waiting, the transport closed right after the last
    transport = await open_transport()
    spec = GroupSpec("g", ("x.*",), concurrency=64)
    await transport.declare([spec])
    inbox = Inbox(transport, settle_with=_soon(transport))
    await transport.consume(spec, inbox)
    await transport.publish([message("x.y") for _ in range(200)])
    await eventually(lambda: len(inbox.got) == 200, what="200 deliveries")
    await transport.close()
    # Then a new transport on the file finds nothing left to deliver
    again = await open_transport()
    [stats] = await again.stats()
    assert (stats.ready, stats.in_flight, stats.scheduled) == (0, 0, 0)


async def test_acks_of_one_turn_go_in_one_commit(
    open_transport: OpenTransport, monkeypatch
) -> None:
    transport = await open_transport()
    spec = GroupSpec("g", ("x.*",), concurrency=64)
    await transport.declare([spec])
    batches: list[int] = []
    apply_all = AckOp.apply_all.__func__  # type: ignore[attr-defined]

    def counted(cls, tx, ops):  # type: ignore[no-untyped-def]
        batches.append(sum(len(op.leases) for op in ops))
        return apply_all(cls, tx, ops)

    monkeypatch.setattr(AckOp, "apply_all", classmethod(counted))
    inbox = Inbox(transport, settle_with=_soon(transport))
    await transport.consume(spec, inbox)
    await transport.publish([message("x.y") for _ in range(64)])
    await eventually(lambda: sum(batches) == 64, what="64 acks committed")
    # claimed in batches of at least 16, their acks committed in far fewer transactions
    assert len(batches) <= 8, batches


async def test_a_failed_ack_commit_is_logged_and_the_delivery_comes_back(
    open_transport: OpenTransport, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a disk that fails every commit of an ack of a first attempt
    transport = await open_transport(lease=0.3)
    spec = GroupSpec("g", ("x.*",))
    await transport.declare([spec])
    apply_all = AckOp.apply_all.__func__  # type: ignore[attr-defined]

    def failing_once(cls, tx, ops):  # type: ignore[no-untyped-def]
        if any(lease.attempt == 1 for op in ops for lease in op.leases):
            raise RuntimeError("disk trouble")
        return apply_all(cls, tx, ops)

    monkeypatch.setattr(AckOp, "apply_all", classmethod(failing_once))
    inbox = Inbox(transport, settle_with=_soon(transport))
    caplog.set_level(logging.WARNING, logger="tidings.sqlite")
    await transport.consume(spec, inbox)
    await transport.publish([message("x.y")])
    # Then the failure is logged and the delivery comes back once its lease ends
    await eventually(lambda: len(inbox.got) == 2, what="the redelivery")
    assert "acknowledgements were not committed" in caplog.text
    assert [d.attempt for d in inbox.got] == [1, 2]
    await eventually(lambda: _settled(transport), what="the second ack committed")


async def _settled(transport) -> bool:  # type: ignore[no-untyped-def]
    [stats] = await transport.stats()
    return (stats.ready, stats.in_flight) == (0, 0)
