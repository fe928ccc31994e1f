"""The sagas of the saga tests, and their messages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tidings import Command, Event, Middleware
from tidings.sagas import Saga, SagaContext, on, start


class TallyOpened(Event, type="tally.opened"):
    tally: str


class Added(Event, type="tally.added"):
    tally: str
    n: int


class TallyClosed(Event, type="tally.closed"):
    tally: str
    total: int


class Close(Command, type="tally.close"):
    tally: str


class Reminder(Command, type="tally.remind"):
    tally: str
    note: str = ""


class Reminded(Event, type="tally.reminded"):
    tally: str
    note: str


class Tally(Saga, name="tally"):
    """Adds numbers; closes on request; reminds itself after a while unless cancelled."""

    status: str = "open"
    total: int = 0
    seen: list[int] = []
    reminder: str | None = None

    @start("tally.opened", key=lambda e: e.tally)
    async def opened(self, event: TallyOpened, ctx: SagaContext) -> None:
        self.reminder = await ctx.schedule(Reminder(tally=event.tally), after=timedelta(minutes=15))

    @on("tally.added", key="tally")
    async def added(self, event: Added, ctx: SagaContext) -> None:
        self.total += event.n
        self.seen = [*self.seen, event.n]
        if event.n < 0:
            ctx.cancel(self.reminder)
            self.reminder = None

    @on("tally.close", key=lambda c: c.tally)
    async def close(self, command: Close, ctx: SagaContext) -> None:
        await ctx.publish(TallyClosed(tally=self.key, total=self.total))
        ctx.complete(status="closed")

    @on("tally.remind", key=lambda c: c.tally)
    async def remind(self, command: Reminder, ctx: SagaContext) -> None:
        self.status = "reminded"
        self.reminder = None
        await ctx.publish(Reminded(tally=self.key, note=command.note))


class SagaCounts(Middleware):
    """Records what the saga engine reports about completions (the metrics hook)."""

    def __init__(self) -> None:
        self.completed: list[tuple[str, str, float]] = []
        self.deliveries = 0

    async def consume(self, ctx: Any, call_next: Any) -> Any:
        self.deliveries += 1
        return await call_next()

    def saga_completed(self, saga_type: str, status: str, duration: float) -> None:
        self.completed.append((saga_type, status, duration))


def data_of(published: Any, type_: str) -> list[dict[str, Any]]:
    """The data of the messages of `type_` in a `TestBus.published` list."""
    return [p.data for p in published if p.type == type_]
