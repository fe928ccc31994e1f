"""The transport contract suite: one set of tests every transport must pass.

A transport is done when the whole suite passes on it against the real server. The tests are
pytest classes; a concrete test module provides a ``harness`` fixture (a `Harness` on a fresh
broker per test) and subclasses the contract classes::

    # tests/contract/test_mytransport.py
    import pytest
    from tidings.contract import BusContract, Harness, TransportContract

    @pytest.fixture
    async def harness(tmp_path):
        async with Harness(f"mine://{tmp_path}/broker") as h:
            yield h

    class TestMyBus(BusContract):
        pass

    class TestMyTransport(TransportContract):
        pass

``Harness(url)`` builds transports through the registry: ``mine`` must be registered with
`tidings.transports.register_transport` or declared in the ``tidings.transports`` entry-point
group of an installed package. ``Harness(url, factory=create_transport)`` uses the factory
instead, for transports and buses (``Bus(url, transport=factory)``) alike.

Call ``pytest.register_assert_rewrite("tidings.contract")`` in your ``conftest.py`` for
pytest's detailed assertion messages. Time: the base `Harness` runs on real time and the
contract keeps back-offs tiny; a harness on a `ManualClock` overrides `Harness.tick` so that
waiting moves the clock (see ``tests/contract/test_memory.py``). Optional capabilities
(``replay_log``, ``dedupe``) are never skipped: their tests check the transport either does it
or raises `NotSupported` (or refuses ``idempotent=True`` with a `ConfigError`).

Importing this module imports pytest; ``import tidings`` never imports it.
"""

from __future__ import annotations

from ._delivery import DeliveryContract
from ._failures import DeadLetterContract, RetryContract
from ._features import ContextPublishContract, IdempotencyContract, OrderingContract
from ._harness import FixedDelay, Harness, Inbox, eventually, group_stats
from ._hostile import HostileInputContract
from ._middleware import MiddlewareContract
from ._operations import LifecycleContract, ReplayLogContract, StatsContract
from ._poison import PoisonContract
from ._requests import ReplyTransportContract, RequestReplyContract
from ._semantics import BatchContract, BoundContract, ClaimContract, DurableOrderContract
from ._transport import TransportContract

__all__ = [
    "BatchContract",
    "BoundContract",
    "BusContract",
    "ClaimContract",
    "ContextPublishContract",
    "DeadLetterContract",
    "DeliveryContract",
    "DurableOrderContract",
    "FixedDelay",
    "Harness",
    "HostileInputContract",
    "IdempotencyContract",
    "Inbox",
    "LifecycleContract",
    "MiddlewareContract",
    "OrderingContract",
    "PoisonContract",
    "ReplayLogContract",
    "ReplyTransportContract",
    "RequestReplyContract",
    "RetryContract",
    "StatsContract",
    "TransportContract",
    "eventually",
    "group_stats",
]


class BusContract(
    DeliveryContract,
    HostileInputContract,
    RetryContract,
    DeadLetterContract,
    IdempotencyContract,
    ContextPublishContract,
    OrderingContract,
    ClaimContract,
    DurableOrderContract,
    BatchContract,
    BoundContract,
    PoisonContract,
    RequestReplyContract,
    StatsContract,
    ReplayLogContract,
    MiddlewareContract,
    LifecycleContract,
):
    """Every contract test at the `Bus` level (users' view, real pipeline)."""
