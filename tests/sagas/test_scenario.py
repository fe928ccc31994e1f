"""`SagaScenario`: a saga's transitions given/when/then, in memory, with the bus's rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.sagas.app import Added, Close, Reminded, Reminder, Tally, TallyClosed, TallyOpened
from tidings.sagas.testing import SagaScenario, timeout_of


async def test_a_start_event_creates_the_instance_and_schedules_its_reminder() -> None:
    result = (
        await SagaScenario(Tally)
        .when(TallyOpened(tally="t-1"))
        .then(
            state={"status": "open", "total": 0},
            status="open",
            scheduled=[(Reminder(tally="t-1"), timedelta(minutes=15).total_seconds())],
            sent=[],
            completed=False,
        )
    )
    assert result.saga is not None and result.saga.key == "t-1"
    assert result.instance is not None and len(result.instance.timeouts) == 1


async def test_events_change_the_state_and_completion_publishes_once() -> None:
    scenario = SagaScenario(Tally).given(
        TallyOpened(tally="t-1"), Added(tally="t-1", n=2), Added(tally="t-1", n=5)
    )
    await scenario.when(Close(tally="t-1")).then(
        published=[TallyClosed(tally="t-1", total=7)], completed="closed"
    )
    # and a later event for the completed instance is ignored
    await scenario.when(Added(tally="t-1", n=1)).then(ignored=True, published=[], status="closed")


async def test_a_second_start_event_is_ignored() -> None:
    await (
        SagaScenario(Tally)
        .given(TallyOpened(tally="t-1"), Added(tally="t-1", n=3))
        .when(TallyOpened(tally="t-1"))
        .then(ignored=True, state={"total": 3}, scheduled=[])
    )


async def test_the_timeout_fires_unless_cancelled() -> None:
    opened = SagaScenario(Tally).given(TallyOpened(tally="t-1"))
    await opened.when(timeout_of(Reminder)).then(
        status="reminded", published=[Reminded(tally="t-1", note="")]
    )
    # a negative addition cancels the reminder: when it comes back it is ignored
    cancelled = SagaScenario(Tally).given(TallyOpened(tally="t-1"), Added(tally="t-1", n=-1))
    await cancelled.when(timeout_of(Reminder)).then(ignored=True, status="open", published=[])
    # and it fires once: a second copy finds no pending token
    twice = SagaScenario(Tally).given(TallyOpened(tally="t-1"), timeout_of(Reminder))
    await twice.when(timeout_of(Reminder)).then(ignored=True, published=[])


async def test_missing_instances_are_ignored_or_dead_lettered() -> None:
    await SagaScenario(Tally).when(Added(tally="none", n=1)).then(ignored=True)
    await (
        SagaScenario(Tally, on_missing="dead_letter")
        .when(Added(tally="none", n=1))
        .then(dead_lettered=True)
    )


async def test_then_names_what_differs() -> None:
    with pytest.raises(
        AssertionError, match=r"state: expected \[\('total', 4\)\], got \[\('total', 3\)\]"
    ):
        await (
            SagaScenario(Tally)
            .given(TallyOpened(tally="t-1"))
            .when(Added(tally="t-1", n=3))
            .then(state={"total": 4})
        )
    with pytest.raises(AssertionError, match="published"):
        await (
            SagaScenario(Tally)
            .given(TallyOpened(tally="t-1"))
            .when(Close(tally="t-1"))
            .then(published=[])
        )
