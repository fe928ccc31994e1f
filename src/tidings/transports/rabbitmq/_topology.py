"""Declaring a bus's RabbitMQ topology: exchanges, queues, bindings.

Per bus: a durable topic exchange (events, routing key = type), a direct exchange (routing
key = group name: sends, replays, the end of every delay) and a topic exchange for delayed
publishes (routing key ``<tier>.<type>``). Per group: a durable queue bound with its patterns
(or, for an ordered group, `partitions` single-active-consumer queues behind a
consistent-hash exchange hashing on the ``tidings-hash`` header), one TTL queue per delay tier
dead-lettering into the direct exchange with the group's name, and ``<bus>.<group>.dlq``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiormq
from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel

from ..._exceptions import ConfigError
from .._group import GroupSpec
from ._errors import HASH_PLUGIN, reason
from ._management import Binding
from ._options import RabbitMQOptions
from ._wire import H_HASH, TIERS, Names

__all__ = [
    "declare_bus",
    "declare_group",
    "require_hash_exchange",
    "stale_bindings",
    "unbind",
]

GROUP_ARG = "x-tidings-group"
"""Queue argument naming the group a main (or first partition) queue belongs to, so stats
can discover groups other processes declared (through the management API)."""


HASH_TYPE = "x-consistent-hash"
HASH_ARGS: dict[str, Any] = {"hash-header": H_HASH}


async def require_hash_exchange(url: str, names: Names, spec: GroupSpec, timeout: float) -> None:
    """Declare an ordered group's consistent-hash exchange on a connection of its own.

    Without the plugin the broker closes the whole *connection* (COMMAND_INVALID, "unknown
    exchange type"); on the transport's robust connection that would be a lost connection
    and a reconnect, so the first ordered group is tried here. Other errors are left to the
    real declaration, which reports them.

    Raises:
        ConfigError: the plugin is not enabled, with the command that enables it.
    """
    connection = await asyncio.wait_for(aiormq.connect(url), timeout)
    try:
        channel = await connection.channel()
        await channel.exchange_declare(
            names.hash_exchange(spec.name),
            exchange_type=HASH_TYPE,
            durable=True,
            arguments=HASH_ARGS,
        )
    except Exception as exc:
        if "unknown exchange type" in reason(exc):
            raise ConfigError(
                f"ordered group {spec.name!r} needs the RabbitMQ consistent-hash exchange "
                f"plugin: run rabbitmq-plugins enable {HASH_PLUGIN}"
            ) from None
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def declare_bus(channel: AbstractChannel, names: Names) -> None:
    await channel.declare_exchange(names.exchange, ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(names.direct, ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(names.delay_exchange, ExchangeType.TOPIC, durable=True)


async def declare_group(
    channel: AbstractChannel, names: Names, spec: GroupSpec, options: RabbitMQOptions
) -> None:
    """Declare one group's queues (and exchange, for an ordered group), bindings, delay-tier
    queues and dead-letter queue; idempotent."""
    queue_args: dict[str, Any] = {"x-queue-type": options.queue_type}
    exchange = await channel.get_exchange(names.exchange, ensure=False)
    direct = await channel.get_exchange(names.direct, ensure=False)
    delay = await channel.get_exchange(names.delay_exchange, ensure=False)
    if spec.ordered:
        hashed = await channel.declare_exchange(
            names.hash_exchange(spec.name), HASH_TYPE, durable=True, arguments=HASH_ARGS
        )
        for pattern in spec.patterns:
            await hashed.bind(exchange, pattern)
        await hashed.bind(direct, spec.name)
        for n in range(options.partitions):
            args = {**queue_args, "x-single-active-consumer": True}
            if n == 0:
                args[GROUP_ARG] = spec.name
            queue = await channel.declare_queue(
                names.partition(spec.name, n), durable=True, arguments=args
            )
            await queue.bind(hashed, "1")
    else:
        queue = await channel.declare_queue(
            names.queue(spec.name), durable=True, arguments={**queue_args, GROUP_ARG: spec.name}
        )
        for pattern in spec.patterns:
            await queue.bind(exchange, pattern)
        await queue.bind(direct, spec.name)
    for tier, seconds in TIERS:
        waiting = await channel.declare_queue(
            names.delay_queue(spec.name, tier),
            durable=True,
            arguments={
                "x-message-ttl": int(seconds * 1000),
                "x-dead-letter-exchange": names.direct,
                "x-dead-letter-routing-key": spec.name,
            },
        )
        for pattern in spec.patterns:
            await waiting.bind(delay, f"{tier}.{pattern}")
    await channel.declare_queue(names.dlq(spec.name), durable=True)


def stale_bindings(names: Names, spec: GroupSpec, found: list[Binding]) -> list[Binding]:
    """Bindings of the group's queues (or hash exchange) from the bus's topic exchanges
    whose pattern the group no longer has: a group's patterns changed since it was declared."""
    main = {names.hash_exchange(spec.name)} if spec.ordered else {names.queue(spec.name)}
    wanted = {(names.exchange, dest, p) for dest in main for p in spec.patterns}
    for tier, _ in TIERS:
        queue = names.delay_queue(spec.name, tier)
        main.add(queue)
        wanted |= {(names.delay_exchange, queue, f"{tier}.{p}") for p in spec.patterns}
    return [
        b
        for b in found
        if b.destination in main
        and b.source in (names.exchange, names.delay_exchange)
        and (b.source, b.destination, b.routing_key) not in wanted
    ]


async def unbind(channel: AbstractChannel, binding: Binding) -> None:
    source = await channel.get_exchange(binding.source, ensure=False)
    if binding.destination_type == "exchange":
        destination = await channel.get_exchange(binding.destination, ensure=False)
        await destination.unbind(source, binding.routing_key)
    else:
        queue = await channel.get_queue(binding.destination, ensure=False)
        await queue.unbind(source, binding.routing_key)
