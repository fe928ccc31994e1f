"""`SagaContext`: what a saga step does besides changing its state — send, publish, schedule
a timeout, cancel one, complete the instance. Everything it holds leaves only when the
step's transition commits (in the same transaction as the new state)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .._exceptions import ConfigError, StateError
from ._definition import message_type

__all__ = ["Outgoing", "SagaContext", "PendingTimeout"]

_IDS = uuid.UUID("0c5b1f0e-8f1d-4c55-9a0e-5a2a7d6c3e41")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message a step sent, published or scheduled.

    Attributes:
        message: the `Event` or `Command`.
        id: its message id, derived from the instance and the event that ran the step (a
            step run again publishes the same ids).
        to: the group it is sent to; None for a publish.
        key: its ordering key (the instance's key unless the step gave another).
        delay: seconds before it is delivered (a timeout's ``after``).
        token: the timeout token, for a scheduled message.
    """

    message: Any
    id: str
    to: str | None
    key: str | None
    delay: float | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class PendingTimeout:
    """A pending timeout of a saga instance (`SagaContext.schedule`).

    Attributes:
        type: the type of the message that comes back.
        due: when it is due (epoch seconds).
    """

    type: str
    due: float

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "due": self.due}


def _seconds(after: timedelta | float) -> float:
    seconds = after.total_seconds() if isinstance(after, timedelta) else after
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise ConfigError(f"schedule(after=...) takes a timedelta or seconds >= 0, not {after!r}")
    return float(seconds)


class SagaContext:
    """What a saga step receives besides the event: how it sends, publishes, schedules
    timeouts and completes its instance.

    Nothing leaves during the step: the messages are held, and committed to the outbox
    together with the instance's new state and the event's inbox row, so a step that fails
    or loses a race sends nothing, and one that commits sends each message once. Their ids
    derive from the instance and the incoming event, and their key is the instance's key
    unless given.

    Attributes:
        saga: the saga's name.
        key: the instance's key.
        event_id: the id of the event the step handles.
        now: the time of the transition (epoch seconds, the bus's clock).
    """

    def __init__(
        self,
        *,
        saga: str,
        key: str,
        event_id: str,
        now: float,
        pending: Mapping[str, PendingTimeout],
        handles: Callable[[str], bool],
    ) -> None:
        self.saga = saga
        self.key = key
        self.event_id = event_id
        self.now = now
        self._pending = dict(pending)
        self._handles = handles
        self._out: list[Outgoing] = []
        self._scheduled: dict[str, PendingTimeout] = {}
        self._cancelled: set[str] = set()
        self._status: str | None = None
        self._count = 0

    def _next_id(self) -> str:
        self._count += 1
        name = f"{self.saga}\x00{self.key}\x00{self.event_id}\x00{self._count}"
        return str(uuid.uuid5(_IDS, name))

    def _check_open(self, what: str) -> None:
        if self._status is not None:
            raise StateError(f"saga {self.saga!r} {self.key!r} is completed: cannot {what}")

    async def send(
        self, command: Any, *, to: str, key: str | None = None, delay: float | None = None
    ) -> str:
        """Send `command` to group `to` once the transition commits; return its id.

        `key` defaults to the instance's key; `delay` holds it back that many seconds.
        """
        if not to or not isinstance(to, str):
            raise ConfigError("send() needs the target group: ctx.send(command, to='group')")
        return self._add(command, to, key, delay)

    async def publish(
        self, event: Any, *, key: str | None = None, delay: float | None = None
    ) -> str:
        """Publish `event` once the transition commits; return its id (key as for `send`)."""
        return self._add(event, None, key, delay)

    def _add(self, message: Any, to: str | None, key: str | None, delay: float | None) -> str:
        if message_type(message) is None:
            raise ConfigError(
                f"a saga sends tidings Event or Command instances, not {type(message).__name__}"
            )
        message_id = self._next_id()
        self._out.append(Outgoing(message, message_id, to, self.key if key is None else key, delay))
        return message_id

    async def schedule(self, message: Any, *, after: timedelta | float) -> str:
        """Deliver `message` to this saga after `after` (a `timedelta` or seconds): a
        durable timeout, staged in the outbox with the transition and held by the broker.

        Return its token (keep it in a field to `cancel` it). When it comes back, the step
        whose pattern matches its type runs, unless it was cancelled, another timeout
        replaced it, or the instance completed: then it is ignored.

        Raises:
            ConfigError: the saga has no step for the message's type, or a bad `after`.
        """
        self._check_open("schedule")
        mtype = message_type(message)
        if mtype is None or not self._handles(mtype):
            raise ConfigError(
                f"saga {self.saga!r} has no step for {mtype or type(message).__name__!r}: a "
                "scheduled message comes back to the saga, so add an @on step for it"
            )
        seconds = _seconds(after)
        token = self._next_id()
        self._out.append(Outgoing(message, token, self.saga, self.key, seconds, token))
        self._scheduled[token] = PendingTimeout(mtype, self.now + seconds)
        return token

    def cancel(self, token: str | None) -> None:
        """Cancel the timeout `token` (when it comes back it is ignored); a token that is
        not pending (None, fired, cancelled already) is ignored."""
        if token is None:
            return
        if self._scheduled.pop(token, None) is not None:
            self._out = [o for o in self._out if o.token != token]
        elif token in self._pending:
            self._cancelled.add(token)

    def complete(self, *, status: str = "completed") -> None:
        """Complete the instance with `status` (``"completed"``, ``"compensated"``, ...):
        its pending timeouts are dropped, and every later event for it is ignored."""
        if not isinstance(status, str) or not status.strip():
            raise ConfigError(f"complete(status=...) takes a non-empty string, not {status!r}")
        self._status = status

    @property
    def completed(self) -> str | None:
        """The status given to `complete`, or None while the instance goes on."""
        return self._status

    @property
    def messages(self) -> tuple[Outgoing, ...]:
        """What the step sent, published and scheduled so far, in order."""
        return tuple(self._out)

    @property
    def pending_timeouts(self) -> dict[str, PendingTimeout]:
        """The instance's pending timeouts after this step (by token)."""
        if self._status is not None:
            return {}
        kept = {t: v for t, v in self._pending.items() if t not in self._cancelled}
        return {**kept, **self._scheduled}
