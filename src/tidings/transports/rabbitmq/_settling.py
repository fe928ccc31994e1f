"""Settling deliveries other than by an ack: retried, postponed, dead-lettered, delayed again.

An unordered group's retry or postponement is a persistent copy sent to one of the group's
delay-tier queues (with its attempt and due time in headers) and the original acknowledged
once the broker confirmed the copy; an ordered group's waits in its worker, in its place
(`RabbitConsumer.retry_in_place`, `RabbitConsumer.hold`). A dead letter is a copy in
``<bus>.<group>.dlq`` with the failure in headers.

The original is acknowledged only once its copy was *routed* and confirmed: a copy the broker
returns or nacks (a quorum queue of a cluster between two leaders, or a channel with a stale
view of it, see `_publisher`) is sent again for up to `UNROUTED_FOR` seconds, then the
settle fails and the original stays unacknowledged (it comes back when the worker's channel
closes). Delay tiers and DLQs have no length bound, so a nack there is never final.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiormq.abc import DeliveredMessage

from ..._clock import Clock
from ..._exceptions import BrokerUnavailable, ConfigError
from .._failure import Failure
from .._message import Delivery
from ._consumer import Handle, RabbitConsumer
from ._dlq import dead_letter_headers
from ._publisher import Outbound, Refused
from ._wire import (
    H_ATTEMPT,
    H_DUE_AT,
    H_FIRST_FAILED,
    H_LAST_FAILED,
    Names,
    copy_message,
    pick_tier,
)

__all__ = ["Settlement", "handle_of"]

logger = logging.getLogger(__name__)

UNROUTED_FOR = 30.0
"""Seconds a returned retry, postponement or dead letter copy is sent again."""
UNROUTED_PAUSE = 0.25


def handle_of(delivery: Delivery) -> Handle:
    """The RabbitMQ handle of a delivery; `ConfigError` for another transport's."""
    handle = delivery.handle
    if not isinstance(handle, Handle):
        raise ConfigError("this delivery was not made by the RabbitMQ transport")
    return handle


class Settlement:
    """The settling operations of one transport.

    Args:
        names: the bus's exchange and queue names.
        clock: the transport's clock (due times are on it).
        send: the transport's confirmed send of (exchange, routing key, body, properties).
        dead_lettered: counts one dead letter of a group, for the stats.
    """

    def __init__(
        self,
        names: Names,
        clock: Clock,
        send: Callable[[Sequence[Outbound]], Awaitable[list[bool]]],
        dead_lettered: Callable[[str], None],
    ) -> None:
        self._names = names
        self._clock = clock
        self._send = send
        self._dead_lettered = dead_lettered

    async def _through_tier(
        self, group: str, message: DeliveredMessage, delay: float, headers: dict[str, str]
    ) -> None:
        tier, _ = pick_tier(delay)
        queue = self._names.delay_queue(group, tier)
        await self._routed(queue, ("", queue, *copy_message(message, headers)))

    async def _routed(self, queue: str, item: Outbound) -> None:
        """Send `item` until the broker routes it to `queue` (see the module docstring).

        Raises:
            BrokerUnavailable: still returned after `UNROUTED_FOR` seconds.
        """
        deadline = time.monotonic() + UNROUTED_FOR
        while True:
            try:
                if (await self._send([item]))[0]:
                    return
                why = "returned unroutable"
            except Refused:
                why = "refused"
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"queue {queue!r} did not take a message for {UNROUTED_FOR:g}s "
                    f"({why}); the delivery stays unsettled"
                )
            logger.debug("queue %s did not take a message (%s); sending it again", queue, why)
            await asyncio.sleep(UNROUTED_PAUSE)

    async def delay_again(
        self, consumer: RabbitConsumer, message: DeliveredMessage, due: float
    ) -> None:
        """A delayed message arrived before its due time: send it through a tier again."""
        await self._through_tier(consumer.spec.name, message, due, {})
        consumer.ack_message(message)

    async def retry_later(self, delivery: Delivery, delay: float, failure: Failure) -> None:
        handle = handle_of(delivery)
        if handle.consumer.spec.ordered:
            handle.consumer.retry_in_place(delivery, delay, failure)
            return
        delay = max(0.0, delay)
        headers = {
            H_ATTEMPT: str(delivery.attempt + 1),
            H_FIRST_FAILED: repr(delivery.first_failed_at or failure.at),
            H_LAST_FAILED: repr(failure.at),
            H_DUE_AT: repr(self._clock.time() + delay),
        }
        await self._through_tier(delivery.group, handle.message, delay, headers)
        handle.consumer.ack(handle)

    async def postpone(self, delivery: Delivery, delay: float) -> None:
        """Ordered: held in place, then run again by its worker. Unordered: sent through a
        delay tier with its attempt as it is (the returns counted so far included)."""
        handle = handle_of(delivery)
        if handle.consumer.spec.ordered:
            handle.consumer.hold(delivery, delay)
            return
        delay = max(0.0, delay)
        headers = {
            H_ATTEMPT: str(delivery.attempt),
            H_DUE_AT: repr(self._clock.time() + delay),
        }
        await self._through_tier(delivery.group, handle.message, delay, headers)
        handle.consumer.ack(handle)

    async def dead_letter(self, delivery: Delivery, failure: Failure) -> None:
        handle = handle_of(delivery)
        copy = copy_message(handle.message, dead_letter_headers(delivery, failure))
        dlq = self._names.dlq(delivery.group)
        await self._routed(dlq, ("", dlq, *copy))
        handle.consumer.ack(handle)
        self._dead_lettered(delivery.group)
