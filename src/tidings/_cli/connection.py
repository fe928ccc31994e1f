"""Which broker a one-shot command (``health``, ``publish``, ``queues``, ``dlq``, ``replay``)
inspects, and the bus it talks to it through.

The URL is, first to last: ``--url``; the URL of the application's bus (``--app
MODULE:bus``, imported, never started), whose ``name`` is used too unless ``--name`` is
given; ``TIDINGS_URL``; ``sqlite:///tidings.db``. An inspecting command never creates a
broker file: a ``sqlite:///`` URL whose file does not exist is an error saying how to point
at one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from .. import Bus, ConfigError, TidingsError
from .._core.url import DEFAULT_URL
from ..transports import mask_url
from ..transports.sqlite import sqlite_path
from .errors import fail
from .target import load_bus

__all__ = ["Broker", "choose_broker", "connect", "inspected_broker"]

_URL_ENV = "TIDINGS_URL"
_DEFAULT_NAME = "tidings"
_POINT_AT_ONE = "point at one with --url sqlite:///path.db or --app module:bus (or set TIDINGS_URL)"


@dataclass(frozen=True, slots=True)
class Broker:
    """The broker a command inspects, as chosen from its options.

    Attributes:
        url: the bus URL.
        name: the bus namespace.
        origin: where the URL came from, for messages (``--url``, ``shop:bus``, ...).
        management_url: the RabbitMQ management API to use, when given.
        options: the transport options of the ``--app`` bus, when its URL is the one used
            (so e.g. its ``management_url`` applies); `management_url` overrides its own.
        app_bus: the ``--app`` bus itself, when a RabbitMQ command uses it unchanged: it is
            started publish-only, so it declares its groups (as its workers do) and the
            counters of those groups can be read over AMQP when the management API cannot
            be reached.
    """

    url: str
    name: str
    origin: str
    management_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    app_bus: Bus | None = field(default=None, compare=False, repr=False)

    @property
    def secrets(self) -> list[str | None]:
        """The URLs whose passwords error lines mask."""
        return [self.url, self.management_url]


def _is_amqp(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("amqp", "amqps")


def _check_file(url: str, origin: str) -> None:
    """Refuse a ``sqlite:///`` URL whose file does not exist (it would be created)."""
    if not url.startswith("sqlite:"):
        return
    path = sqlite_path(url)
    if not path.is_file():
        raise ConfigError(f"no broker file at {path} ({origin}); {_POINT_AT_ONE}")


def choose_broker(
    *,
    app: str | None,
    url: str | None,
    name: str | None,
    management_url: str | None = None,
) -> Broker:
    """The broker the options name, by the precedence in the module's docstring.

    Raises:
        ConfigError: a bad ``--app`` target, ``--management-url`` with a URL that is not
            ``amqp://`` or ``amqps://``, or a broker file that does not exist.
    """
    bus = load_bus(app) if app else None
    env = os.environ.get(_URL_ENV, "").strip()
    if url and url.strip():
        chosen, origin = url.strip(), "from --url"
    elif bus is not None:
        chosen, origin = bus.url, f"the URL of {app}"
    elif env:
        chosen, origin = env, f"from {_URL_ENV}"
    else:
        chosen, origin = DEFAULT_URL, "the default"
    if management_url and not _is_amqp(chosen):
        raise ConfigError(
            f"--management-url is for RabbitMQ (amqp:// or amqps:// URLs), not {mask_url(chosen)}"
        )
    _check_file(chosen, origin)
    namespace = name or (bus.name if bus is not None else _DEFAULT_NAME)
    mine = bus if bus is not None and chosen == bus.url else None  # the app's broker
    options = dict(mine.transport_options) if mine is not None else {}
    reuse = mine is not None and _is_amqp(chosen) and not management_url and namespace == mine.name
    return Broker(
        chosen, namespace, origin, management_url or None, options, mine if reuse else None
    )


def inspected_broker(
    app: str | None, url: str | None, name: str | None, management_url: str | None
) -> Broker:
    """`choose_broker` for a command: its errors are one ``error:`` line, exit status 1."""
    try:
        return choose_broker(app=app, url=url, name=name, management_url=management_url)
    except TidingsError as exc:
        fail(str(exc), urls=[url, management_url])


@asynccontextmanager
async def connect(broker: Broker) -> AsyncIterator[Bus]:
    """An open publish-only bus (it starts no consumers) on `broker`."""
    options: dict[str, Any] = dict(broker.options)
    if broker.management_url:
        options["management_url"] = broker.management_url
    if broker.app_bus is not None and broker.app_bus.state.value == "new":
        bus = broker.app_bus
        bus.consume = False  # declare its groups, start none of its consumers
        bus.use_database(None)  # and create no tables in its database, run no relay
    else:
        bus = Bus(broker.url, name=broker.name, consume=False, **options)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()
