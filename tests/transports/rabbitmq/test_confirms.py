"""Confirms settled by `_confirms`: a ``multiple`` confirm settles every publish it covers,
returned publishes fail as unroutable, and nothing is left in the channel's books; a publish
given up before the broker returned it does not break the channel; a closed channel fails
what it still owed; aiormq's own publishes on a watched channel are settled too."""

import asyncio

import aiormq
import pytest
from pamqp import commands as spec

from tidings.transports.rabbitmq._aiormq import send_publishes

from .conftest import pending_publish

pytestmark = pytest.mark.rabbitmq


def books(channel) -> tuple[int, int, int]:
    """(confirmations, message ids, our ids) the channel still holds."""
    return (
        len(channel.confirmations),
        len(channel.message_id_delivery_tag),
        len(channel._tidings_message_ids),
    )


async def test_a_burst_with_returns_is_settled_and_leaves_the_books_empty(confirm_channel):
    channel, queue = confirm_channel
    # Given 200 publishes, every tenth to a queue that does not exist
    nowhere = f"{queue}.nowhere"
    batch = [pending_publish(nowhere if n % 10 == 0 else queue, n) for n in range(200)]
    # When they are written in one go
    await send_publishes(channel, batch)
    outcomes = await asyncio.gather(*(item.outcome for item in batch), return_exceptions=True)
    # Then the routed ones are acked, the others failed as returned
    for n, outcome in enumerate(outcomes):
        if n % 10 == 0:
            assert isinstance(outcome, aiormq.exceptions.PublishError), (n, outcome)
        else:
            assert isinstance(outcome, spec.Basic.Ack), (n, outcome)
    # And the channel keeps nothing of them
    assert books(channel) == (0, 0, 0)
    assert (await channel.queue_declare(queue, passive=True)).message_count == 180


async def test_a_publish_given_up_before_its_return_leaves_the_channel_working(confirm_channel):
    channel, queue = confirm_channel
    # Given an unroutable publish whose publisher gave up before the broker answered
    lost = pending_publish(f"{queue}.nowhere", 0)
    await send_publishes(channel, [lost])
    lost.outcome.cancel()
    # When the broker returns it and the channel goes on publishing
    later = [pending_publish(queue, n) for n in range(1, 4)]
    await send_publishes(channel, later)
    answers = await asyncio.gather(*(item.outcome for item in later))
    # Then the later publishes are confirmed on the same open channel
    assert all(isinstance(a, spec.Basic.Ack) for a in answers)
    assert not channel.is_closed
    assert books(channel) == (0, 0, 0)


async def test_a_closed_channel_fails_what_it_still_owes(confirm_channel):
    channel, queue = confirm_channel
    # Given publishes written but (most likely) not yet confirmed
    batch = [pending_publish(queue, n) for n in range(50)]
    await send_publishes(channel, batch)
    # When the channel is closed by a bad call before the confirms are read
    with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
        await channel.queue_declare(f"{queue}.missing", passive=True)
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(item.outcome for item in batch), return_exceptions=True), 10
    )
    # Then every publish is settled: confirmed before the close, or failed by it
    for outcome in outcomes:
        assert isinstance(
            outcome,
            spec.Basic.Ack
            | aiormq.exceptions.AMQPError
            | aiormq.exceptions.ChannelInvalidStateError,
        ), outcome


async def test_aiormqs_own_publishes_on_a_watched_channel_are_confirmed(confirm_channel):
    channel, queue = confirm_channel
    # Given a channel tidings has published on (its confirms settled by `_confirms`)
    await send_publishes(channel, [pending_publish(queue, 0)])
    # When aiormq's public publish is used on it, alone and among ours
    mine = [pending_publish(queue, n) for n in range(1, 10)]
    theirs, _ = await asyncio.gather(
        channel.basic_publish(b"x", routing_key=queue), send_publishes(channel, mine)
    )
    await asyncio.gather(*(item.outcome for item in mine))
    # Then every one is confirmed and the books are empty
    assert isinstance(theirs, spec.Basic.Ack)
    assert books(channel) == (0, 0, 0)
