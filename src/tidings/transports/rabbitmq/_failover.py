"""A robust connection over several nodes of a cluster: the one door to aio-pika's reconnect
internals.

aio-pika's `RobustConnection` knows one URL. Each of its connection attempts (the first, and
every reconnect after a lost connection) runs its private ``__connect_transport``, which
connects to ``self.url``. `FailoverConnection` makes ``url`` the current node's URL and wraps
that one method: an attempt tries every node once, starting with the node after the one it
used last, and the first that answers wins, so a lost node costs one attempt, not one
``reconnect_interval`` per node that is down.

`supported` checks that `RobustConnection` still has that method (tested with aio-pika
10.2.1, the version the ``rabbitmq`` extra pins). Where it does not, the fallback keeps only
public means: a close callback moves ``url`` on to the next node when the connection is lost,
and on again every 1.5 ``reconnect_interval`` until a reconnect succeeds, so the attempts
go round the nodes (one node per attempt); `open_connection` tries each node in turn for the
first connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from aio_pika import RobustConnection
from yarl import URL

from ._reader import bulk_reading, remember_socket

__all__ = ["FailoverConnection", "supported"]

logger = logging.getLogger(__name__)

_ATTEMPT = "_RobustConnection__connect_transport"
"""aio-pika's one connection attempt (name-mangled private method)."""


def supported() -> bool:
    """Whether `RobustConnection` has the connection attempt `FailoverConnection` wraps."""
    return callable(getattr(RobustConnection, _ATTEMPT, None))


class FailoverConnection(RobustConnection):
    """A `RobustConnection` over `urls` (one per node), starting with ``urls[first]``.

    Args:
        urls: the driver URL of each node, in the order given by the user.
        first: the node to use first (the one the first connection reached).
        wrapped: use the wrapped connection attempt (`supported`); False forces the
            fallback (tests).
        **kwargs: as for `RobustConnection` (``client_properties``).
    """

    def __init__(
        self, urls: Sequence[str], first: int = 0, *, wrapped: bool | None = None, **kwargs: Any
    ) -> None:
        self._nodes = [URL(u) for u in urls]
        self._current = first
        self._attempted = False
        super().__init__(self._nodes[first], **kwargs)
        self.wrapped = supported() if wrapped is None else wrapped
        self._rotating: asyncio.Task[None] | None = None
        if not self.wrapped and len(self._nodes) > 1:
            self.close_callbacks.add(self._next_after_loss)

    @property
    def url(self) -> URL:
        """The URL of the node in use (or tried next)."""
        return self._nodes[self._current]

    @url.setter
    def url(self, value: URL | str) -> None:
        # Set by `Connection.__init__` and `update_secret`: the node in use.
        self._nodes[self._current] = URL(value)

    @property
    def node(self) -> int:
        """The index of the node in use (or tried next)."""
        return self._current

    def _next_after_loss(self, _sender: Any, exc: BaseException | None = None, *_: Any) -> None:
        if exc is None or self.is_closed or self.close_called:
            return
        self._current = (self._current + 1) % len(self._nodes)
        if self._rotating is None or self._rotating.done():
            self._rotating = asyncio.get_running_loop().create_task(self._round_the_nodes())

    async def _round_the_nodes(self) -> None:
        """The fallback: the next node every ``reconnect_interval`` until reconnected."""
        while not self.close_called and not self.is_closed:
            # One and a half intervals: not in step with the attempts, so they land on
            # every node in turn rather than always on the same one.
            await asyncio.sleep(1.5 * float(self.reconnect_interval))
            if self.connected.is_set():
                return
            self._current = (self._current + 1) % len(self._nodes)

    async def _attempt_every_node(self) -> None:
        """One connection attempt: each node once, the next one after the last used first
        (the node in use on the very first attempt); the last error when none answers."""
        attempt = cast(
            Callable[[RobustConnection], Awaitable[None]], getattr(RobustConnection, _ATTEMPT)
        )
        count = len(self._nodes)
        start = (self._current + 1) % count if self._attempted else self._current
        self._attempted = True
        failure: BaseException | None = None
        for step in range(count):
            self._current = (start + step) % count
            try:
                await attempt(self)
                return
            except Exception as exc:
                failure = exc
                logger.debug("node %s did not answer: %s", self._current, exc)
        assert failure is not None
        raise failure

    async def _RobustConnection__connect_transport(self) -> None:  # noqa: N802 - aio-pika's name
        with bulk_reading() as made:  # this connection reads its frames in bulk (`_reader`)
            if self.wrapped and len(self._nodes) > 1:
                await self._attempt_every_node()
            else:
                await getattr(RobustConnection, _ATTEMPT)(self)
        underlay = getattr(self.transport, "connection", None)
        if underlay is not None:
            remember_socket(underlay, made)
