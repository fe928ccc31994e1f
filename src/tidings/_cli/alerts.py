"""Alerts that notify: ``tidings queues --watch --alert-webhook URL``.

At each refresh the alert rules that `Bus.stats` evaluates (a backlog over its threshold, no
consumers while messages wait, a publish rate over twice the ack rate, a growing dead-letter
queue), and the age of the outbox for a bus that has one, are compared with the previous
refresh. A rule that starts firing for a group is posted once as JSON::

    {"status": "firing", "rule": "backlog", "group": "inventory",
     "message": "backlog: 1200 ready, over the threshold of 1000", "value": 1200,
     "at": "2026-01-05T10:00:00Z"}

and once more with ``"status": "resolved"`` (the same message, the value now) when it stops.
The watch keeps no state across runs: a watch started while a rule fires posts it again,
so a receiver dedupes on (rule, group), as Alertmanager's receivers do.

Posts go out in order from a task of their own, so a slow webhook never holds up the
refresh. A post that fails is tried twice more, then logged with the URL's password
masked and dropped; the watch goes on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import ConfigError, GroupStats, __version__
from ..transports import mask_url
from .errors import mask_text

__all__ = ["Alert", "AlertWebhook", "firing"]

logger = logging.getLogger(__name__)

OUTBOX_GROUP = "outbox"
"""The `group` of the outbox-age rule (the outbox belongs to no group)."""
OUTBOX_MAX_AGE = 60.0
"""Seconds a message may wait in the outbox before the outbox-age rule fires: a relay that
keeps up sends within a second."""

Value = int | float | None


@dataclass(frozen=True, slots=True)
class Alert:
    """One rule firing for one group."""

    rule: str
    group: str
    message: str
    value: Value

    @property
    def key(self) -> tuple[str, str]:
        return self.rule, self.group


# The rules of `tidings._core.stats.evaluate_alerts`, told apart by how their line starts,
# with the number each is about.
_RULES: tuple[tuple[str, str, Callable[[GroupStats], Value]], ...] = (
    ("backlog", "backlog", lambda s: s.ready),
    ("no_consumers", "no consumers", lambda s: s.ready),
    ("publish_rate", "publish rate", lambda s: s.publish_rate),
    ("dlq_growing", "dead-letter queue growing", lambda s: s.dead_recent),
)


def _rule_of(line: str) -> tuple[str, Callable[[GroupStats], Value] | None]:
    for rule, start, value in _RULES:
        if line.startswith(start):
            return rule, value
    # A rule this module does not know yet: named after the start of its line.
    return "_".join(line.split(":", 1)[0].split()[:3]).lower() or "alert", None


def firing(stats: Sequence[GroupStats], outbox: Any = None) -> dict[tuple[str, str], Alert]:
    """The alerts firing in `stats` (and for `outbox`, an ``OutboxStats``), by (rule, group)."""
    found: dict[tuple[str, str], Alert] = {}
    for s in stats:
        for line in s.alerts:
            rule, value = _rule_of(line)
            alert = Alert(rule, s.group, line, value(s) if value else None)
            found.setdefault(alert.key, alert)
    if outbox is not None and outbox.oldest_age > OUTBOX_MAX_AGE:
        alert = Alert(
            "outbox_age",
            OUTBOX_GROUP,
            f"outbox: the oldest of {outbox.pending} pending messages has waited "
            f"{outbox.oldest_age:.0f}s, over {OUTBOX_MAX_AGE:.0f}s",
            outbox.oldest_age,
        )
        found[alert.key] = alert
    return found


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _request(url: str, body: bytes) -> urllib.request.Request:
    """A POST of `body` to `url`, credentials in the URL sent as basic authentication."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", "User-Agent": f"tidings/{__version__}"}
    if parts.username is not None or parts.password is not None:
        userinfo = f"{parts.username or ''}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(userinfo).decode()
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def post_json(url: str, body: bytes, timeout: float = 5.0) -> None:
    """POST `body` to `url` (blocking); raise for a failure or a status that is not 2xx."""
    with urllib.request.urlopen(_request(url, body), timeout=timeout) as response:
        response.read()


class AlertWebhook:
    """Posts the alerts that start and stop firing to a webhook.

    Args:
        url: an ``http://`` or ``https://`` URL; a password in it is sent as basic
            authentication and masked in every log line.
        post: sends one body (blocking; run in a thread); `post_json` by default.
        retry_delays: seconds before each new try of a post that failed.
        now: the ``at`` of a notification.
    """

    def __init__(
        self,
        url: str,
        *,
        post: Callable[[str, bytes], None] = post_json,
        retry_delays: Sequence[float] = (0.5, 2.0),
        now: Callable[[], str] = _now_iso,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"the alert webhook must be an http:// or https:// URL, not {mask_url(url)!r}"
            )
        self.url = url
        self._post = post
        self._retry_delays = tuple(retry_delays)
        self._now = now
        self._firing: dict[tuple[str, str], Alert] = {}
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    def update(self, stats: Sequence[GroupStats], outbox: Any = None) -> None:
        """Compare the alerts of `stats` with the last update's; queue a notification for
        each rule that started or stopped firing."""
        now = firing(stats, outbox)
        at = self._now()
        for key, alert in now.items():
            if key not in self._firing:
                self._send("firing", alert, alert.value, at)
        for key, alert in self._firing.items():
            if key not in now:
                self._send("resolved", alert, self._current(alert, stats, outbox), at)
        self._firing = now

    @staticmethod
    def _current(alert: Alert, stats: Sequence[GroupStats], outbox: Any) -> Value:
        if alert.rule == "outbox_age":
            return outbox.oldest_age if outbox is not None else None
        _, value = _rule_of(alert.message)
        group = next((s for s in stats if s.group == alert.group), None)
        return value(group) if value is not None and group is not None else None

    def _send(self, status: str, alert: Alert, value: Value, at: str) -> None:
        self._outbox.put_nowait(
            {
                "status": status,
                "rule": alert.rule,
                "group": alert.group,
                "message": alert.message,
                "value": value,
                "at": at,
            }
        )
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while not self._outbox.empty():
            await self._deliver(self._outbox.get_nowait())

    async def _deliver(self, notification: dict[str, Any]) -> None:
        body = json.dumps(notification).encode()
        for delay in (*self._retry_delays, None):
            try:
                await asyncio.to_thread(self._post, self.url, body)
                return
            except Exception as exc:
                if delay is None:
                    logger.warning(
                        "alert webhook %s failed (%s); dropped the %s notification of %s for %s",
                        mask_url(self.url),
                        " ".join(mask_text(str(exc), [self.url]).split()) or type(exc).__name__,
                        notification["status"],
                        notification["rule"],
                        notification["group"],
                    )
                    return
            await asyncio.sleep(delay)

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, for up to `timeout` seconds, then stop."""
        if self._sender is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._sender), timeout)
        except TimeoutError:
            self._sender.cancel()
