"""Testing a saga's transitions without a broker or a database: given the events that
happened, when one more arrives, then the saga is in this state and sent these messages.

```python
from tidings.sagas.testing import SagaScenario, timeout_of


async def test_a_declined_card_releases_the_stock() -> None:
    await (
        SagaScenario(Checkout)
        .given(OrderPlaced(order_id="o-1", total=Decimal("9.90")))
        .when(PaymentDeclined(order_id="o-1"))
        .then(sent=[ReleaseStock(order_id="o-1")], completed="compensated")
    )


async def test_the_payment_times_out() -> None:
    await (
        SagaScenario(Checkout)
        .given(OrderPlaced(order_id="o-1", total=Decimal("9.90")))
        .when(timeout_of(PaymentTimedOut))
        .then(status="compensated")
    )
```

A scenario applies the same rules as the bus (a start event creates the instance and is
ignored once it exists; other events need it; a completed instance ignores everything; a
timeout runs only while it is pending), and stores the state as JSON between events, so
what does not survive a round trip fails here as it would in production.
"""

from __future__ import annotations

import copy
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from .._exceptions import ConfigError
from ._context import Outgoing
from ._definition import Saga, SagaDefinition, definition_of, message_type
from ._transition import SagaInstance, Transition, step_for, transition

__all__ = ["SagaResult", "SagaScenario", "timeout_of"]

_START = 1_700_000_000.0


@dataclass(frozen=True, slots=True)
class _Fire:
    message: type[Any] | str


def timeout_of(message: type[Any] | str) -> Any:
    """The timeout the saga scheduled with a message of class (or type) `message`, coming
    back: pass it to `SagaScenario.given` or `SagaScenario.when`. It is the last one
    scheduled; a cancelled or replaced one is ignored, as on the bus."""
    return _Fire(message)


@dataclass(slots=True)
class SagaResult:
    """What the event given to `SagaScenario.when` did.

    Attributes:
        verdict: ``ran``, ``ignored`` (a start event for an instance that exists, an event
            for a completed one, a stale timeout), ``missing`` (no instance for it) or
            ``invalid``.
        reason: why it did not run, when it did not.
        saga: the saga's state after it (None without an instance).
        instance: the stored instance after it (status, pending timeouts, history).
        sent: the commands it sent, as ``(message, group)``.
        published: the events it published.
        scheduled: the timeouts it scheduled, as ``(message, seconds)``.
    """

    verdict: str
    reason: str = ""
    saga: Saga | None = None
    instance: SagaInstance | None = None
    sent: list[tuple[Any, str]] = field(default_factory=list)
    published: list[Any] = field(default_factory=list)
    scheduled: list[tuple[Any, float]] = field(default_factory=list)

    @property
    def status(self) -> str | None:
        """The instance's status (its completion status once completed)."""
        return None if self.instance is None else self.instance.status

    @property
    def completed(self) -> bool:
        """True when the instance is completed."""
        return self.instance is not None and self.instance.completed


def _same(what: str, expected: Sequence[Any], actual: Sequence[Any]) -> None:
    if list(expected) != list(actual):
        raise AssertionError(f"{what}: expected {list(expected)!r}, got {list(actual)!r}")


def _like(expected: Sequence[Any], actual: Sequence[tuple[Any, Any]]) -> list[Any]:
    """`actual` ``(message, detail)`` pairs shaped like `expected`: a pair where the test
    gave a pair, the message alone where it gave a message."""
    return [
        pair if i < len(expected) and isinstance(expected[i], tuple) else pair[0]
        for i, pair in enumerate(actual)
    ]


class SagaScenario:
    """Given/when/then for one saga class, in memory.

    Args:
        saga: the `Saga` subclass.
        on_missing: as for ``bus.add_saga``: an event with no instance is ``"ignore"``d or
            ``"dead_letter"``ed (then `then` fails unless told ``dead_lettered=True``).
    """

    def __init__(
        self, saga: type[Saga], *, on_missing: Literal["ignore", "dead_letter"] = "ignore"
    ) -> None:
        self.definition: SagaDefinition = definition_of(saga)
        self.on_missing = on_missing
        self.now = _START
        self.instances: dict[str, SagaInstance] = {}
        self._scheduled: list[tuple[str, Outgoing]] = []  # (key, message) every one ever made
        self._given: list[Any] = []
        self._when: Any = None
        self._count = 0

    def given(self, *events: Any) -> SagaScenario:
        """Events (or `timeout_of` markers) that happened first, in order."""
        self._given.extend(events)
        return self

    def when(self, event: Any) -> SagaScenario:
        """The event (or `timeout_of` marker) whose effect `then` checks."""
        self._when = event
        return self

    def advance(self, seconds: float | timedelta) -> SagaScenario:
        """Move the scenario's clock (the times in the state and the history)."""
        self.now += seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
        return self

    async def apply(self, event: Any) -> SagaResult:
        """Deliver one event (or `timeout_of` marker) now and return what it did."""
        message, token, key = self._resolve(event)
        mtype = message_type(message)
        step = step_for(self.definition, mtype) if mtype else None
        if step is None:
            raise ConfigError(f"saga {self.definition.name!r} has no step for {mtype!r}")
        if key is None:
            key = step.key_of(message)
        self._count += 1
        done = await transition(
            self.definition,
            step,
            self.instances.get(key),
            copy.deepcopy(message),
            event_type=str(mtype),
            event_id=f"scenario-{self._count}",
            key=key,
            token=token,
            now=self.now,
        )
        return self._record(done)

    def _resolve(self, event: Any) -> tuple[Any, str | None, str | None]:
        if not isinstance(event, _Fire):
            return event, None, None
        wanted = event.message
        for key, out in reversed(self._scheduled):
            of = message_type(out.message) if isinstance(wanted, str) else type(out.message)
            if of == wanted:
                return out.message, out.token, key
        raise AssertionError(f"the saga scheduled no {wanted!r} timeout")

    def _record(self, done: Transition) -> SagaResult:
        result = SagaResult(done.verdict, done.reason, instance=self.instances.get(done.key))
        if done.instance is not None and done.context is not None:
            self.instances[done.key] = done.instance
            result.instance = done.instance
            for out in done.context.messages:
                if out.token is not None:
                    self._scheduled.append((done.key, out))
                    result.scheduled.append((out.message, float(out.delay or 0.0)))
                elif out.to is not None:
                    result.sent.append((out.message, out.to))
                else:
                    result.published.append(out.message)
        if result.instance is not None:
            result.saga = self.definition.cls.model_validate(result.instance.state)
            result.saga._key = done.key
        return result

    async def run(self) -> SagaResult:
        """Apply the `given` events not applied yet, then the `when` event; return what the
        last did. A scenario goes on from there: ``when(...).then(...)`` again checks the
        next event."""
        given, self._given = self._given, []
        for event in given:
            await self.apply(event)
        when, self._when = self._when, None
        if when is None:
            raise ConfigError("SagaScenario: say when(event) before then(...)")
        return await self.apply(when)

    async def then(
        self,
        *,
        state: dict[str, Any] | None = None,
        status: str | None = None,
        sent: Sequence[Any] | None = None,
        published: Sequence[Any] | None = None,
        scheduled: Sequence[Any] | None = None,
        completed: bool | str | None = None,
        ignored: bool | None = None,
        dead_lettered: bool = False,
    ) -> SagaResult:
        """Run the scenario and check the `when` event's effect; return it.

        Args:
            state: fields of the saga and their values after it (others are not checked).
            status: the instance's status after it.
            sent: the commands it sent, in order (messages, or ``(message, group)``).
            published: the events it published, in order.
            scheduled: the timeouts it scheduled (messages, or ``(message, seconds)``).
            completed: whether it completed the instance, or the status it completed with.
            ignored: whether it was ignored (its step did not run).
            dead_lettered: it is dead-lettered: no instance, with
                ``on_missing="dead_letter"``, or a stored state that does not validate.

        Raises:
            AssertionError: naming what differs.
        """
        result = await self.run()
        dead = result.verdict == "invalid" or (
            result.verdict == "missing" and self.on_missing == "dead_letter"
        )
        if dead != dead_lettered:
            why = f"{result.verdict}: {result.reason}" if result.reason else result.verdict
            raise AssertionError(f"dead-lettered: expected {dead_lettered}, got {dead} ({why})")
        if ignored is not None and (result.verdict != "ran") != ignored:
            raise AssertionError(f"ignored: expected {ignored}, got {result.verdict}")
        if state is not None:
            actual = result.saga.model_dump() if result.saga is not None else {}
            _same("state", list(state.items()), [(k, actual.get(k)) for k in state])
        if status is not None:
            _same("status", [status], [result.status])
        if sent is not None:
            _same("sent", sent, _like(sent, result.sent))
        if published is not None:
            _same("published", published, result.published)
        if scheduled is not None:
            _same("scheduled", scheduled, _like(scheduled, result.scheduled))
        if completed is not None:
            want = completed if isinstance(completed, bool) else True
            _same("completed", [want], [result.completed])
            if isinstance(completed, str):
                _same("completion status", [completed], [result.status])
        return result

    def __await__(self) -> Generator[Any, None, SagaResult]:
        return self.run().__await__()
