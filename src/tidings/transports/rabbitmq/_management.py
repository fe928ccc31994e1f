"""A small client of RabbitMQ's management HTTP API, used only when it answers.

AMQP cannot list queues or bindings, tell unacknowledged counts or rates; the management API
can (sampled by the broker every ``collect_statistics_interval``). When it does not answer,
it is left alone for `RETRY_AFTER` seconds and callers do without (see `_stats`); `failure`
says why, for the one warning the stats log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ._address import ManagementAddress

__all__ = ["Binding", "Management", "QueueInfo"]

RETRY_AFTER = 30.0
TIMEOUT = 2.0
"""Seconds one request may take (a host that drops packets costs this once per `RETRY_AFTER`)."""


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    group: str | None
    unacked: int
    publish_rate: float | None
    ack_rate: float | None
    head_timestamp: float | None = None
    max_length: int | None = None
    """The queue's ``x-max-length`` argument (a bounded group's queue)."""


@dataclass(frozen=True, slots=True)
class Binding:
    source: str
    destination: str
    destination_type: str
    routing_key: str


def _why(exc: BaseException, user: str) -> str:
    """One line on why a request failed, with what fixes it where we can tell."""
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code in (401, 403):
            return (
                f"it refused user {user!r} (HTTP {exc.code}): the user needs the monitoring "
                "or management tag (rabbitmqctl set_user_tags USER monitoring), and the guest "
                "user may only log in from localhost"
            )
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:g}s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, ValueError):
        return f"not a management API answer ({exc})"
    return str(exc) or type(exc).__name__


class Management:
    """A small client of the management HTTP API, used only when it answers.

    Args:
        address: its base URL and the credentials and virtual host to use.
    """

    def __init__(self, address: ManagementAddress) -> None:
        self._address = address
        self._base = address.base
        self._vhost = address.vhost_path
        self._down_until = 0.0
        self.failure: str | None = None
        """Why the last request failed (None once one succeeds)."""

    @property
    def url(self) -> str:
        """The base URL (credentials are never part of it)."""
        return self._base

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self._base}{path}")
        credentials = f"{self._address.user}:{self._address.password}".encode()
        request.add_header("Authorization", f"Basic {base64.b64encode(credentials).decode()}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response, and so the socket
            raise

    async def _fetch(self, path: str) -> Any | None:
        """The decoded answer, or None when the API does not answer (then left alone for
        `RETRY_AFTER` seconds)."""
        if time.monotonic() < self._down_until:
            return None
        try:
            answer = await asyncio.to_thread(self._get, path)
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            self._down_until = time.monotonic() + RETRY_AFTER
            self.failure = _why(exc, self._address.user)
            return None
        self.failure = None
        return answer

    async def queues(self, prefix: str) -> list[QueueInfo] | None:
        """The vhost's queues named ``<prefix>.*``, or None when the API does not answer."""
        pattern = urllib.parse.quote("^" + prefix.replace(".", "\\.") + "\\.", safe="")
        path = (
            f"/api/queues/{self._vhost}?use_regex=true&name={pattern}"
            "&columns=name,arguments,messages_unacknowledged,message_stats,head_message_timestamp"
        )
        rows = await self._fetch(path)
        if rows is None:
            return None
        out: list[QueueInfo] = []
        if not isinstance(rows, list):
            return out
        for row in rows:
            stats = row.get("message_stats") or {}
            arguments = row.get("arguments") or {}
            group = arguments.get("x-tidings-group")
            limit = arguments.get("x-max-length")
            out.append(
                QueueInfo(
                    name=str(row.get("name", "")),
                    group=str(group) if group is not None else None,
                    unacked=int(row.get("messages_unacknowledged") or 0),
                    publish_rate=_rate(stats, "publish_details"),
                    ack_rate=_rate(stats, "ack_details"),
                    head_timestamp=_number(row.get("head_message_timestamp")),
                    max_length=_count(limit),
                )
            )
        return out

    async def bindings(self, prefix: str) -> list[Binding] | None:
        """Bindings of the vhost whose destination is named ``<prefix>.*``, or None when
        the API does not answer."""
        rows = await self._fetch(f"/api/bindings/{self._vhost}")
        if rows is None:
            return None
        return [
            Binding(
                source=str(row.get("source", "")),
                destination=str(row.get("destination", "")),
                destination_type=str(row.get("destination_type", "")),
                routing_key=str(row.get("routing_key", "")),
            )
            for row in (rows if isinstance(rows, list) else [])
            if str(row.get("destination", "")).startswith(prefix + ".")
        ]


def _rate(stats: dict[str, Any], name: str) -> float | None:
    details = stats.get(name)
    if not isinstance(details, dict):
        return None
    rate = details.get("rate")
    return float(rate) if isinstance(rate, int | float) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
