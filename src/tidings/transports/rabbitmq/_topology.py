"""Declaring a bus's RabbitMQ topology, and translating broker errors into ours.

Per bus: a durable topic exchange (events, routing key = type), a direct exchange (routing
key = group name: sends, replays, the end of every delay) and a topic exchange for delayed
publishes (routing key ``<tier>.<type>``). Per group: a durable queue bound with its patterns
(or, for an ordered group, `partitions` single-active-consumer queues behind a
consistent-hash exchange hashing on the ``tidings-hash`` header), one TTL queue per delay tier
dead-lettering into the direct exchange with the group's name, and ``<bus>.<group>.dlq``.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import aiormq.exceptions
from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel

from ..._exceptions import BrokerUnavailable, ConfigError, MessageTooLarge, TidingsError
from .._group import GroupSpec
from .._urls import mask_url
from ._stats import Binding
from ._wire import H_HASH, TIERS, Names

__all__ = [
    "declare_bus",
    "quiet_connect_errors",
    "stale_bindings",
    "unbind",
    "declare_group",
    "partitions_of",
    "queue_type_of",
    "translate",
]

GROUP_ARG = "x-tidings-group"
"""Queue argument naming the group a main (or first partition) queue belongs to, so stats
can discover groups other processes declared (through the management API)."""


def partitions_of(extra: Mapping[str, object]) -> int:
    value = extra.get("partitions", 4)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"partitions must be a positive integer, not {value!r}")
    return value


def queue_type_of(extra: Mapping[str, object]) -> str:
    value = extra.get("queue_type", "classic")
    if value not in ("classic", "quorum"):
        raise ConfigError(f"queue_type must be 'classic' or 'quorum', not {value!r}")
    return str(value)


async def declare_bus(channel: AbstractChannel, names: Names) -> None:
    await channel.declare_exchange(names.exchange, ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(names.direct, ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(names.delay_exchange, ExchangeType.TOPIC, durable=True)


async def declare_group(
    channel: AbstractChannel, names: Names, spec: GroupSpec, extra: Mapping[str, object]
) -> None:
    queue_args: dict[str, Any] = {"x-queue-type": queue_type_of(extra)}
    exchange = await channel.get_exchange(names.exchange, ensure=False)
    direct = await channel.get_exchange(names.direct, ensure=False)
    delay = await channel.get_exchange(names.delay_exchange, ensure=False)
    if spec.ordered:
        hashed = await channel.declare_exchange(
            names.hash_exchange(spec.name),
            "x-consistent-hash",
            durable=True,
            arguments={"hash-header": H_HASH},
        )
        for pattern in spec.patterns:
            await hashed.bind(exchange, pattern)
        await hashed.bind(direct, spec.name)
        for n in range(partitions_of(extra)):
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


_INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)' for (queue|exchange) '([^']+)'")


def _vhost(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _reply_text(exc: BaseException) -> str:
    words = [a for a in exc.args if isinstance(a, str)]
    text = words[-1] if words else str(exc)
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def translate(exc: BaseException, url: str, doing: str) -> TidingsError:
    """One clear line for an aio-pika/aiormq/socket error, with the URL's password masked."""
    where = mask_url(url)
    text = _reply_text(exc)
    if isinstance(exc, TidingsError):
        return exc
    if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
        found = _INEQUIVALENT.search(text)
        if found:
            arg, kind, name = found.groups()
            return ConfigError(
                f"{kind} {name!r} on {where} already exists with a different {arg!r} "
                f"({text.split(': ', 1)[-1]}); delete it or declare it with the same {arg}"
            )
        if "message size" in text or "max size" in text:
            return MessageTooLarge(f"{doing} on {where}: the broker refused it: {text}")
        return ConfigError(f"{doing} on {where}: the broker refused it: {text}")
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError | PermissionError) or (
        "ACCESS_REFUSED" in text or "authentication" in text.lower()
    ):
        return ConfigError(
            f"RabbitMQ at {where} refused the login: check the user name and password in the URL"
        )
    # The broker answers Connection.Open with Connection.Close when the virtual host does
    # not exist or the user may not use it (aiormq reports it as an unexpected frame).
    refused_open = "Connection.OpenOk" in text and "Connection.Close" in text
    if refused_open or "NOT_ALLOWED" in text or "vhost" in text.lower():
        return ConfigError(
            f"RabbitMQ at {where} refused the virtual host {_vhost(url)!r}: it does not exist "
            "or the user may not access it; create it (rabbitmqctl add_vhost) or fix the "
            "path of the URL"
        )
    if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
        return ConfigError(f"{doing} on {where}: {text}; declare the groups first")
    if isinstance(exc, OSError | ConnectionError | aiormq.exceptions.AMQPConnectionError):
        return BrokerUnavailable(f"cannot reach RabbitMQ at {where} ({doing}): {text}")
    return BrokerUnavailable(f"{doing} on {where} failed: {type(exc).__name__}: {text}")


class _DropConnectErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "error when creating transport" not in record.getMessage()


@contextlib.contextmanager
def quiet_connect_errors() -> Iterator[None]:
    """Silence aiormq's own ERROR log of a failed first connect: we raise one clear error
    instead (a reconnect failing later is still logged)."""
    target = logging.getLogger("aiormq.connection")
    dropper = _DropConnectErrors()
    target.addFilter(dropper)
    try:
        yield
    finally:
        target.removeFilter(dropper)


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
