"""Declaring a bus's RabbitMQ topology: exchanges, queues, bindings.

Per bus: a durable topic exchange (events, routing key = type), a direct exchange (routing
key = group name: sends, replays, the end of every delay) and a topic exchange for delayed
publishes (routing key ``<tier>.<type>``). Per group: a durable queue bound with its patterns
(or, for an ordered group, `partitions` single-active-consumer *quorum* queues, whatever the
bus's ``queue_type``, behind a consistent-hash exchange hashing on the ``tidings-hash``
header), one TTL queue per delay tier dead-lettering into the direct exchange with the
group's name, and ``<bus>.<group>.dlq``.

A group with ``max_ready`` (quorum queues only, `check_bounds`) has ``x-max-length`` and
``x-overflow=reject-publish`` on its queue (an even share on each partition); its delay tiers
are quorum queues dead-lettering at least once, so nothing they hold is dropped by a full
group, and an unordered group's tiers dead-letter into its returns lane
``<bus>.<group>.returns`` (consumed with the group's queue, outside the bound), so a retry
never waits for room. On a bus of quorum queues (``queue_type="quorum"``) every group's delay
tiers and DLQ are quorum queues too, the tiers dead-lettering at least once: on a cluster,
nothing a group holds lives on one node only. An existing queue declared with other arguments
is a `ConfigError` that says what to do (`_refused`), but for a classic tier or DLQ made by an
earlier tidings on a quorum bus, which is kept with a WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import aiormq
from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractQueue

from ..._exceptions import ConfigError
from .._group import GroupSpec
from .._message import OutgoingMessage
from ._errors import HASH_PLUGIN, INEQUIVALENT, reason
from ._management import Binding
from ._options import RabbitMQOptions
from ._wire import H_HASH, TIERS, Names, pick_tier

__all__ = [
    "check_bounds",
    "declare_bus",
    "declare_group",
    "queue_bound",
    "require_hash_exchange",
    "route",
    "stale_bindings",
    "unbind",
]

logger = logging.getLogger(__name__)

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


def route(names: Names, message: OutgoingMessage) -> tuple[str, str]:
    """(exchange, routing key) of a message: its group's delay-tier queue or the delay
    exchange when delayed, the direct exchange when sent to a group, else the topic exchange."""
    if message.delay > 0:
        tier, _ = pick_tier(message.delay)
        if message.group is not None:
            return "", names.delay_queue(message.group, tier)
        return names.delay_exchange, f"{tier}.{message.type}"
    if message.group is not None:
        return names.direct, message.group
    return names.exchange, message.type


async def declare_bus(channel: AbstractChannel, names: Names) -> None:
    await channel.declare_exchange(names.exchange, ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(names.direct, ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(names.delay_exchange, ExchangeType.TOPIC, durable=True)


BOUND_ARGS = frozenset(
    {
        "x-max-length",
        "x-overflow",
        "x-dead-letter-strategy",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
    }
)
"""Queue arguments that ``max_ready`` sets or changes."""


def check_bounds(specs: Sequence[GroupSpec], options: RabbitMQOptions) -> None:
    """Refuse ``max_ready`` on classic queues, before anything is declared.

    Raises:
        ConfigError: a bounded group on a bus whose queues are classic.
    """
    for spec in specs:
        if spec.max_ready is not None and options.queue_type != "quorum":
            raise ConfigError(
                f"group {spec.name!r} has max_ready={spec.max_ready}: on RabbitMQ a bound "
                "needs quorum queues (x-max-length with x-overflow=reject-publish, and "
                "at-least-once dead-lettering so a retry is never dropped); create the bus "
                "with Bus(..., queue_type='quorum')"
            )


def queue_bound(spec: GroupSpec, partitions: int) -> int | None:
    """Most ready messages one queue of the group takes: ``max_ready`` for an unordered group,
    an even share of it (rounded up) for each partition of an ordered one; None: unbounded."""
    if spec.max_ready is None:
        return None
    return -(-spec.max_ready // partitions) if spec.ordered else spec.max_ready


def _bound_args(bound: int | None) -> dict[str, Any]:
    if bound is None:
        return {}
    # A quorum queue refuses a publish only once it holds *more* than x-max-length ready
    # messages (RabbitMQ 3.10: it takes one past the limit), so the limit is one less.
    return {"x-max-length": max(0, bound - 1), "x-overflow": "reject-publish"}


def _tier_args(
    names: Names, spec: GroupSpec, seconds: float, options: RabbitMQOptions
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "x-message-ttl": int(seconds * 1000),
        "x-dead-letter-exchange": names.direct,
        "x-dead-letter-routing-key": spec.name,
    }
    if spec.max_ready is None and options.queue_type != "quorum":
        return args
    # A bounded group's tiers never drop what they hold: quorum queues dead-lettering at
    # least once (which needs reject-publish), so a message the group's queue refuses
    # stays here and is offered again. An unordered group's come back through its returns
    # lane, outside the bound; an ordered group's must go through their partition. On a
    # bus of quorum queues every group's tiers are such queues: replicated, and a retry
    # whose group queue has no leader for a moment (a node lost) waits instead of being
    # dropped (at-most-once dead-lettering would drop it).
    args.update(
        {
            "x-queue-type": "quorum",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    )
    if not spec.ordered and spec.max_ready is not None:
        args.update(
            {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": names.returns(spec.name)}
        )
    return args


async def declare_group(
    channel: AbstractChannel, names: Names, spec: GroupSpec, options: RabbitMQOptions
) -> None:
    """Declare one group's queues (and exchange, for an ordered group), bindings, delay-tier
    queues and dead-letter queue; idempotent.

    Raises:
        ConfigError: an existing queue of the group has other arguments (a classic
            partition queue of an earlier tidings, a changed ``max_ready``), saying what to do.
    """
    exchange = await channel.get_exchange(names.exchange, ensure=False)
    direct = await channel.get_exchange(names.direct, ensure=False)
    delay = await channel.get_exchange(names.delay_exchange, ensure=False)
    bound = _bound_args(queue_bound(spec, options.partitions))
    if spec.ordered:
        hashed = await channel.declare_exchange(
            names.hash_exchange(spec.name), HASH_TYPE, durable=True, arguments=HASH_ARGS
        )
        for pattern in spec.patterns:
            await hashed.bind(exchange, pattern)
        await hashed.bind(direct, spec.name)
        for n in range(options.partitions):
            # Quorum whatever the bus's queue_type: x-delivery-count is the durable count
            # of an ordered retry's attempts (see `_partitions`).
            args = {"x-queue-type": "quorum", "x-single-active-consumer": True, **bound}
            if n == 0:
                args[GROUP_ARG] = spec.name
            name = names.partition(spec.name, n)
            queue = await _declare_queue(channel, name, args, spec, options)
            await queue.bind(hashed, "1")
    else:
        args = {"x-queue-type": options.queue_type, GROUP_ARG: spec.name, **bound}
        queue = await _declare_queue(channel, names.queue(spec.name), args, spec, options)
        for pattern in spec.patterns:
            await queue.bind(exchange, pattern)
        await queue.bind(direct, spec.name)
        if spec.max_ready is not None:
            lane = {"x-queue-type": "quorum"}
            await _declare_queue(channel, names.returns(spec.name), lane, spec, options)
    for tier, seconds in TIERS:
        name = names.delay_queue(spec.name, tier)
        args = _tier_args(names, spec, seconds, options)
        waiting = await _declare_or_keep(channel, name, args, spec, options)
        for pattern in spec.patterns:
            await waiting.bind(delay, f"{tier}.{pattern}")
    quorum = {"x-queue-type": "quorum"} if options.queue_type == "quorum" else {}
    await _declare_or_keep(channel, names.dlq(spec.name), quorum, spec, options)


async def _declare_or_keep(
    channel: AbstractChannel,
    name: str,
    args: dict[str, Any],
    spec: GroupSpec,
    options: RabbitMQOptions,
) -> AbstractQueue:
    """Declare a delay-tier queue or DLQ; one that an earlier tidings made as a classic queue
    on a bus of quorum queues is kept, with a WARNING (it works, on one node only)."""
    try:
        return await channel.declare_queue(name, durable=True, arguments=args or None)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        text = reason(exc)
        if spec.max_ready is not None or "'x-queue-type'" not in text:
            raise _refused(name, args, spec, options, text) from exc
    await channel.reopen()  # a refused declare closes the channel
    logger.warning(
        "queue %r is a classic queue made by an earlier tidings; keeping it (it lives on one "
        "node of a cluster): drain and delete it to have it declared as a quorum queue",
        name,
    )
    return await channel.get_queue(name, ensure=False)


async def _declare_queue(
    channel: AbstractChannel,
    name: str,
    args: dict[str, Any],
    spec: GroupSpec,
    options: RabbitMQOptions,
) -> AbstractQueue:
    try:
        return await channel.declare_queue(name, durable=True, arguments=args)
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise _refused(name, args, spec, options, reason(exc)) from exc


def _refused(
    name: str, args: dict[str, Any], spec: GroupSpec, options: RabbitMQOptions, text: str
) -> ConfigError:
    """What to do about a queue of the group that exists with other arguments."""
    found = INEQUIVALENT.search(text)
    arg = found.group(1) if found else "?"
    detail = text.split(": ", 1)[-1]
    if arg == "x-queue-type" and args.get("x-single-active-consumer"):
        last = options.partitions - 1
        return ConfigError(
            f"ordered group {spec.name!r}: its partition queue {name!r} is a classic queue "
            "made by an earlier tidings, and ordered groups now use quorum partition queues "
            "(their x-delivery-count keeps a retry's attempt count when a worker dies); stop "
            "the group's workers, let the partitions drain, delete them (rabbitmqctl "
            f"delete_queue --if-empty {name[: name.rindex('.p')]}.p0 ... .p{last}) and "
            f"start again ({detail})"
        )
    if arg in BOUND_ARGS or (arg == "x-queue-type" and spec.max_ready is not None):
        return ConfigError(
            f"group {spec.name!r}: queue {name!r} exists with another {arg!r} ({detail}); "
            "max_ready sets arguments of the group's queues, which RabbitMQ cannot change "
            "on an existing queue: keep the earlier max_ready, or drain the group and delete "
            "its queues so they are declared anew"
        )
    return ConfigError(
        f"queue {name!r} already exists with a different {arg!r} ({detail}); delete it or "
        f"declare it with the same {arg}"
    )


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
