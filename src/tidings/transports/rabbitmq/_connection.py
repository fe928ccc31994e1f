"""The transport's one robust connection: opened within ``connect_timeout``, and watched so
that losing it and getting it back are each one WARNING line. A URL naming several nodes
gets a `FailoverConnection` over them (see `_failover`).

aio-pika's `RobustConnection` reconnects every ``reconnect_interval`` seconds and restores its
channels and consumers. Its first connect retries errors it does not count as connection
errors (an unusable address, say) forever; here it is bounded by ``connect_timeout`` and the
half-made connection is closed, so its reconnect task does not outlive the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from aio_pika.connection import make_url

from ..._exceptions import BrokerUnavailable
from .._urls import mask_url
from ._address import AmqpAddress
from ._client_logs import quiet_client_logs, restore_client_logs
from ._errors import reason
from ._failover import FailoverConnection

__all__ = ["ConnectionWatch", "WatchedConnection", "open_connection"]

logger = logging.getLogger(__name__)


async def open_connection(
    address: AmqpAddress, *, name: str, timeout: float, reconnect_interval: float
) -> AbstractRobustConnection:
    """Connect to the first node that answers, or raise within `timeout` seconds per node.

    Raises:
        BrokerUnavailable: no answer within `timeout` seconds (per node).
        Exception: the driver's error of a refused connection (translate it).
    """
    urls = [str(make_url(u, reconnect_interval=reconnect_interval)) for u in address.driver_urls()]
    properties = {"connection_name": f"tidings {name}"}
    first = 0
    while True:
        connection = FailoverConnection(urls, first, client_properties=properties)
        try:
            await asyncio.wait_for(connection.connect(timeout=timeout), timeout * len(urls))
        except TimeoutError:
            await _close(connection)
            nodes = ", ".join(address.where(n) for n in range(len(urls)))
            raise BrokerUnavailable(
                f"cannot reach RabbitMQ at {mask_url(address.url)}: no answer within "
                f"{timeout:g}s (connect_timeout); check that the broker runs and listens on "
                f"{nodes}"
            ) from None
        except Exception:
            await _close(connection)
            # One attempt tried every node, unless the fallback is in use (one node each).
            first += 1
            if connection.wrapped or first == len(urls):
                raise
            continue
        except BaseException:
            await _close(connection)
            raise
        return connection


async def _close(connection: AbstractRobustConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.close()


class ConnectionWatch:
    """Logs one WARNING when the connection is lost and one when it is restored.

    aio-pika calls the close callbacks once per lost underlying connection (not per failed
    reconnect attempt) and the reconnect callbacks once the channels are restored; a
    flag keeps it to one pair of lines per outage.

    Args:
        url: the broker URL (shown with its password masked).
        reconnect_interval: seconds between reconnect attempts (said in the line).
    """

    def __init__(self, url: str, reconnect_interval: float) -> None:
        self._where = mask_url(url)
        self._interval = reconnect_interval
        self._lost_at: float | None = None
        self._closing = False

    @property
    def lost(self) -> bool:
        """True between a lost connection and its restoration."""
        return self._lost_at is not None

    def attach(self, connection: AbstractRobustConnection) -> None:
        """Watch `connection` (its close and reconnect callbacks)."""
        connection.close_callbacks.add(self._on_close)
        connection.reconnect_callbacks.add(self._on_reconnect)

    def closing(self) -> None:
        """The transport closes the connection itself: that is no loss."""
        self._closing = True

    def _on_close(self, _sender: Any, exc: BaseException | None = None, *_: Any) -> None:
        if self._closing or self._lost_at is not None:
            return
        if exc is None or isinstance(exc, asyncio.CancelledError):
            return
        self._lost_at = time.monotonic()
        logger.warning(
            "lost the connection to RabbitMQ at %s (%s); reconnecting every %gs",
            self._where,
            reason(exc),
            self._interval,
        )

    def _on_reconnect(self, *_: Any) -> None:
        lost_at, self._lost_at = self._lost_at, None
        if lost_at is None or self._closing:
            return
        logger.warning(
            "connection to RabbitMQ at %s restored after %.1fs",
            self._where,
            time.monotonic() - lost_at,
        )


class WatchedConnection:
    """Opens and closes the transport's connection: the client libraries' log lines kept
    out while it is open (`_client_logs`), a `ConnectionWatch` on it.

    Args:
        address: the broker.
        name: the bus name (the connection is named ``tidings <name>`` in the broker).
        connect_timeout: seconds the first connection may take.
        reconnect_interval: seconds between reconnect attempts.
    """

    def __init__(
        self, address: AmqpAddress, *, name: str, connect_timeout: float, reconnect_interval: float
    ) -> None:
        self._address = address
        self._name = name
        self._timeout = connect_timeout
        self._interval = reconnect_interval
        self._quieted = False
        self._watch: ConnectionWatch | None = None

    async def open(self) -> AbstractRobustConnection:
        """Connect (see `open_connection`); call `close` afterwards in any case."""
        if not self._quieted:
            self._quieted = True
            quiet_client_logs()
        self._watch = ConnectionWatch(self._address.url, self._interval)
        connection = await open_connection(
            self._address,
            name=self._name,
            timeout=self._timeout,
            reconnect_interval=self._interval,
        )
        self._watch.attach(connection)
        return connection

    async def close(self, connection: AbstractRobustConnection | None) -> None:
        """Close `connection` (no loss is reported) and let the client logs through again."""
        if self._watch is not None:
            self._watch.closing()
        if connection is not None:
            await _close(connection)
        if self._quieted:
            self._quieted = False
            restore_client_logs()
