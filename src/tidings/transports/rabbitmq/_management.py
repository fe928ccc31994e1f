"""A small client of RabbitMQ's management HTTP API, used only when it answers.

AMQP cannot list queues or bindings, tell unacknowledged counts or rates; the management API
can (sampled by the broker every ``collect_statistics_interval``). When it does not answer,
it is left alone for `RETRY_AFTER` seconds and callers do without (see `_stats`).
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

__all__ = ["Binding", "Management", "QueueInfo"]

RETRY_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    group: str | None
    unacked: int
    publish_rate: float | None
    ack_rate: float | None
    head_timestamp: float | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    source: str
    destination: str
    destination_type: str
    routing_key: str


def _default_management_url(amqp_url: str) -> str:
    parts = urllib.parse.urlsplit(amqp_url)
    host = parts.hostname or "localhost"
    scheme = "https" if parts.scheme == "amqps" else "http"
    return f"{scheme}://{host}:15672"


class Management:
    """A small client of the management HTTP API, used only when it answers."""

    def __init__(self, amqp_url: str, management_url: str | None) -> None:
        parts = urllib.parse.urlsplit(amqp_url)
        self._user = urllib.parse.unquote(parts.username or "guest")
        self._password = urllib.parse.unquote(parts.password or "guest")
        vhost = urllib.parse.unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self._vhost = urllib.parse.quote(vhost, safe="")
        self._base = (management_url or _default_management_url(amqp_url)).rstrip("/")
        self._down_until = 0.0

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self._base}{path}")
        token = base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=2.0) as response:
            return json.loads(response.read())

    async def queues(self, prefix: str) -> list[QueueInfo] | None:
        """The vhost's queues named ``<prefix>.*``, or None when the API does not answer."""
        if time.monotonic() < self._down_until:
            return None
        pattern = urllib.parse.quote("^" + prefix.replace(".", "\\.") + "\\.", safe="")
        path = (
            f"/api/queues/{self._vhost}?use_regex=true&name={pattern}"
            "&columns=name,arguments,messages_unacknowledged,message_stats,head_message_timestamp"
        )
        try:
            rows = await asyncio.to_thread(self._get, path)
        except (OSError, ValueError, urllib.error.URLError):
            self._down_until = time.monotonic() + RETRY_AFTER
            return None
        out: list[QueueInfo] = []
        if not isinstance(rows, list):
            return out
        for row in rows:
            stats = row.get("message_stats") or {}
            group = (row.get("arguments") or {}).get("x-tidings-group")
            out.append(
                QueueInfo(
                    name=str(row.get("name", "")),
                    group=str(group) if group is not None else None,
                    unacked=int(row.get("messages_unacknowledged") or 0),
                    publish_rate=_rate(stats, "publish_details"),
                    ack_rate=_rate(stats, "ack_details"),
                    head_timestamp=_number(row.get("head_message_timestamp")),
                )
            )
        return out

    async def bindings(self, prefix: str) -> list[Binding] | None:
        """Bindings of the vhost whose destination is named ``<prefix>.*``, or None when
        the API does not answer."""
        if time.monotonic() < self._down_until:
            return None
        try:
            rows = await asyncio.to_thread(self._get, f"/api/bindings/{self._vhost}")
        except (OSError, ValueError, urllib.error.URLError):
            self._down_until = time.monotonic() + RETRY_AFTER
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


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
