"""Concurrent publishes of one event-loop turn are committed as one op; each caller still
gets its own routed flags, each call is stored whole or not at all, and one failing publish
does not fail the others."""

from __future__ import annotations

import asyncio

import pytest

from tidings import TidingsError
from tidings.transports import GroupSpec
from tidings.transports.sqlite._publisher import PublishOp

from .conftest import OpenTransport, message


def _record_ops(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    sizes: list[int] = []
    apply_all = PublishOp.apply_all.__func__  # type: ignore[attr-defined]

    def recorded(cls, tx, ops):  # type: ignore[no-untyped-def]
        sizes.extend(sum(len(call) for call in op.calls) for op in ops)
        if any(m.type == "bad.one" for op in ops for call in op.calls for m in call):
            raise RuntimeError("refused")
        return apply_all(cls, tx, ops)

    monkeypatch.setattr(PublishOp, "apply_all", classmethod(recorded))
    return sizes


async def test_a_burst_is_one_op_and_each_caller_gets_its_own_flags(
    open_transport: OpenTransport, monkeypatch
) -> None:
    transport = await open_transport()
    await transport.declare([GroupSpec("g", ("x.*",))])
    sizes = _record_ops(monkeypatch)
    results = await asyncio.gather(
        *(
            transport.publish([message("x.y"), message("z.z")] if n % 2 else [message("x.y")])
            for n in range(100)
        )
    )
    assert results == [[True, False] if n % 2 else [True] for n in range(100)]
    assert sizes == [150]  # 50 callers with two messages, 50 with one, in one op
    # The calls holding an unroutable message stored nothing (the bus raises on those)
    [stats] = await transport.stats()
    assert stats.ready == 50


async def test_a_failing_publish_in_a_burst_fails_alone(
    open_transport: OpenTransport, monkeypatch
) -> None:
    transport = await open_transport()
    await transport.declare([GroupSpec("g", ("x.*",))])
    _record_ops(monkeypatch)
    results = await asyncio.gather(
        transport.publish([message("x.y")]),
        transport.publish([message("bad.one")]),
        transport.publish([message("x.y")]),
        return_exceptions=True,
    )
    assert results[0] == [True] and results[2] == [True]
    assert isinstance(results[1], TidingsError)
    assert "refused" in str(results[1])
    [stats] = await transport.stats()
    assert stats.ready == 2


@pytest.mark.parametrize("callers", [1, 3])
async def test_a_cancelled_caller_does_not_disturb_the_burst(
    open_transport: OpenTransport, callers: int
) -> None:
    transport = await open_transport()
    await transport.declare([GroupSpec("g", ("x.*",))])
    tasks = [asyncio.create_task(transport.publish([message("x.y")])) for _ in range(callers)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert all(r == [True] for r in done[1:])
