"""A dead letter's history as replayed messages carry it, failure signatures, merge patches."""

from __future__ import annotations

import json
import math
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import eventually
from tidings import Bus, Context, DeadLetter, DeadLetters, Event, Retry
from tidings._core.failure_groups import FailureGrouping, signature, top_frame
from tidings._core.failures import (
    HISTORY_HEADER,
    MAX_HISTORY,
    REPLAYS_HEADER,
    history_of,
    replay_headers,
    visible_headers,
)
from tidings._core.merge_patch import merge_patch
from tidings.transports import RawDeadLetter
from tidings.transports.memory import MemoryBroker

AT = 1_700_000_000.0


def raw(headers: dict[str, str] | None = None, **changes: Any) -> RawDeadLetter:
    """A dead letter as a transport stores it: ValueError on the 3rd attempt."""
    fields: dict[str, Any] = {
        "entry_id": uuid.uuid4().hex,
        "group": "billing",
        "id": "e-1",
        "type": "order.placed",
        "body": b'{"order_id": "o-1"}',
        "content_type": "application/json",
        "headers": headers or {},
        "key": None,
        "reason": "failed 3 of 3 attempts: ValueError: declined",
        "exception_type": "builtins.ValueError",
        "message": "declined",
        "traceback": "",
        "attempts": 3,
        "first_failed_at": AT - 10,
        "last_failed_at": AT,
    }
    return RawDeadLetter(**{**fields, **changes})


def replayed(entry: RawDeadLetter, **changes: Any) -> RawDeadLetter:
    """The dead letter of `entry` replayed and failed again (the transport keeps the
    headers of the replayed message in its new entry)."""
    headers = {**entry.headers, **replay_headers(entry)}
    return raw(headers, **changes)


# -- history headers ---------------------------------------------------------------------


def test_a_first_dead_letter_has_its_own_failure_only() -> None:
    history, replays = history_of(raw())
    assert replays == 0
    [failure] = history
    assert failure.at == datetime.fromtimestamp(AT, UTC)
    assert (failure.attempts, failure.exception_type, failure.message) == (
        3,
        "builtins.ValueError",
        "declined",
    )
    assert failure.replayed is False


def test_replay_headers_carry_every_failure_so_far_and_count_replays() -> None:
    # Given an entry replayed twice, failing differently each time
    first = raw()
    second = replayed(
        first, message="timeout", exception_type=None, attempts=1, last_failed_at=AT + 60
    )
    third = replayed(second, message="declined again", last_failed_at=AT + 120)

    # When its history is read
    history, replays = history_of(third)

    # Then it has the three failures in order, the last two replayed
    assert replays == 2
    assert [(f.message, f.exception_type, f.attempts, f.replayed) for f in history] == [
        ("declined", "builtins.ValueError", 3, False),
        ("timeout", None, 1, True),
        ("declined again", "builtins.ValueError", 3, True),
    ]
    assert [f.at.timestamp() for f in history] == [AT, AT + 60, AT + 120]
    # and the headers are compact JSON a plain AMQP client can read
    headers = replay_headers(third)
    assert headers[REPLAYS_HEADER] == "3"
    carried = json.loads(headers[HISTORY_HEADER])
    assert headers[HISTORY_HEADER] == json.dumps(carried, separators=(",", ":"))
    assert len(carried) == 3


def test_the_history_carried_is_bounded() -> None:
    # Given an entry replayed more times than the history keeps, with long messages
    entry = raw(message="x" * 5000)
    for n in range(MAX_HISTORY + 5):
        entry = replayed(entry, message=f"failure {n} " + "y" * 5000, last_failed_at=AT + n)

    # When it is replayed again
    headers = replay_headers(entry)
    history, replays = history_of(replayed(entry, message="last"))

    # Then the header keeps the last failures, each message shortened, and counts them all
    carried = json.loads(headers[HISTORY_HEADER])
    assert len(carried) == MAX_HISTORY
    assert carried[-1]["message"].startswith(f"failure {MAX_HISTORY + 4} ")
    assert all(len(item["message"]) == 200 for item in carried)
    assert len(headers[HISTORY_HEADER]) < 8 * 1024
    assert replays == MAX_HISTORY + 6
    assert len(history) == MAX_HISTORY + 1 and history[-1].message == "last"


def _item(**changes: Any) -> dict[str, Any]:
    item = {"at": AT, "attempts": 2, "exception_type": "E", "message": "m", "replayed": False}
    return {**item, **changes}


HOSTILE_HISTORY = {
    "not JSON": "declined!",
    "an object": json.dumps(_item()),
    "deeply nested": "[" * 30_000 + "]" * 30_000,
    "too long": json.dumps([_item()] * 5000),
    "too many": json.dumps([_item()] * (MAX_HISTORY + 1)),
    "not an object": json.dumps([[AT, 2]]),
    "NaN time": "[" + json.dumps(_item()).replace(str(AT), "NaN") + "]",
    "infinite time": "[" + json.dumps(_item()).replace(str(AT), "1e999") + "]",
    "negative time": json.dumps([_item(at=-1)]),
    "time past 9999": json.dumps([_item(at=1e12)]),
    "boolean time": json.dumps([_item(at=True)]),
    "attempts as text": json.dumps([_item(attempts="2")]),
    "fractional attempts": json.dumps([_item(attempts=1.5)]),
    "huge attempts": json.dumps([_item(attempts=10**30)]),
    "message not text": json.dumps([_item(message=["m"])]),
    "type not text": json.dumps([_item(exception_type=7)]),
    "replayed not boolean": json.dumps([_item(replayed="yes")]),
    "a good item, then a bad one": json.dumps([_item(), _item(at="now")]),
}


@pytest.mark.parametrize("value", HOSTILE_HISTORY.values(), ids=HOSTILE_HISTORY.keys())
def test_a_history_header_that_cannot_be_read_is_ignored(value: str) -> None:
    # Given a dead letter whose history header is not one we wrote
    entry = raw({HISTORY_HEADER: value, REPLAYS_HEADER: "1"})

    # When its history is read, or it is replayed
    history, replays = history_of(entry)
    headers = replay_headers(entry)

    # Then its history is its own failure, and the replay count still holds
    assert [f.message for f in history] == ["declined"]
    assert replays == 1 and history[0].replayed
    assert len(json.loads(headers[HISTORY_HEADER])) == 1
    assert headers[REPLAYS_HEADER] == "2"


@pytest.mark.parametrize("value", ["-1", "1e9", "2.5", "many", "9" * 400, ""])
def test_a_replay_count_that_cannot_be_read_comes_from_the_history(value: str) -> None:
    history = json.dumps([_item(), _item(replayed=True)])
    entry = raw({HISTORY_HEADER: history, REPLAYS_HEADER: value})
    failures, replays = history_of(entry)
    assert replays == 1
    assert [f.replayed for f in failures] == [False, True, True]
    assert history_of(raw({REPLAYS_HEADER: value}))[1] == 0


def test_handlers_do_not_see_the_history_headers() -> None:
    headers = {"tenant": "acme", HISTORY_HEADER: "[]", REPLAYS_HEADER: "1"}
    assert visible_headers(headers) == {"tenant": "acme"}
    plain = {"tenant": "acme"}
    assert visible_headers(plain) is plain


# -- failure signatures -------------------------------------------------------------------


def _raise(exc: BaseException) -> None:
    raise exc


def _formatted(make: Any) -> str:
    try:
        make()
    except BaseException as exc:  # noqa: BLE001 - any exception is what is formatted
        return "".join(traceback.format_exception(exc, limit=-8))
    raise AssertionError("nothing raised")


def test_the_top_frame_is_where_the_last_exception_was_raised() -> None:
    def charge() -> None:
        try:
            _raise(KeyError("sku"))
        except KeyError as exc:
            raise ValueError("declined") from exc

    shown, key = top_frame(_formatted(charge))
    here = Path(__file__)
    assert shown.startswith(f"{here.parent.name}/{here.name}:")
    assert shown.endswith(" in charge")
    assert key == f"{here.parent.name}/{here.name} in charge"


def test_the_top_frame_of_an_exception_group_and_of_no_traceback() -> None:
    def gather() -> None:
        raise ExceptionGroup("many", [ValueError("a")])

    assert top_frame(_formatted(gather))[0].endswith(" in gather")
    assert top_frame("") == ("", "")
    assert top_frame("undecodable message: not JSON") == ("", "")


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/srv/venv/lib/python3.12/site-packages/httpx/_client.py", "httpx/_client.py"),
        ("/usr/lib/python3/dist-packages/yaml/reader.py", "yaml/reader.py"),
        ("/usr/lib/python3.12/asyncio/tasks.py", "asyncio/tasks.py"),
        ("/home/me/shop/payment.py", "shop/payment.py"),
        ("C:\\apps\\shop\\payment.py", "shop/payment.py"),
        ("payment.py", "payment.py"),
        ("<string>", "<string>"),
    ],
)
def test_frame_paths_are_shortened(path: str, shown: str) -> None:
    text = f'Traceback (most recent call last):\n  File "{path}", line 42, in charge\n    x\nE: m\n'
    assert top_frame(text) == (f"{shown}:42 in charge", f"{shown} in charge")


def test_signatures_are_stable_and_ignore_the_line_number() -> None:
    # The same in every process and release (not Python's randomised hash)
    assert signature("builtins.ValueError", "shop.charge", "shop/payment.py in charge") == (
        "abbd3a280682"
    )
    # A deploy that moves the line keeps the signature
    moved = [
        top_frame(f'  File "/srv/shop/payment.py", line {n}, in charge\n')[1] for n in (42, 57)
    ]
    assert signature("E", "h", moved[0]) == signature("E", "h", moved[1])
    # Another exception type, handler or frame is another signature
    base = signature("E", "h", "f")
    assert (
        len({base, signature("F", "h", "f"), signature("E", "g", "f"), signature("E", "h", "g")})
        == 4
    )
    assert signature(None, None, "") != signature("", "", "x")


def _trace(line: int) -> str:
    frame = f'  File "/srv/shop/payment.py", line {line}, in charge\n'
    return f"Traceback (most recent call last):\n{frame}ValueError: declined\n"


def test_grouping_gathers_by_signature_biggest_and_latest_first() -> None:
    # Given entries of three failures, read oldest first
    grouping = FailureGrouping({"order.placed": "shop.charge"}.get)
    entries = [
        raw(entry_id="a", traceback=_trace(42), last_failed_at=AT),
        raw(entry_id="b", exception_type="builtins.KeyError", last_failed_at=AT + 1),
        raw(entry_id="c", traceback=_trace(57), last_failed_at=AT + 2),  # moved by a deploy
        raw(entry_id="d", type="order.shipped", traceback=_trace(42), last_failed_at=AT + 3),
    ]
    for entry in entries:
        grouping.add(entry)

    # When the groups are taken
    declined, shipped, missing = grouping.groups()

    # Then the two declined cards are one group, shown with the latest frame
    assert (declined.entry_ids, declined.count) == (["a", "c"], 2)
    assert declined.top_frame == "shop/payment.py:57 in charge"
    assert declined.handler == "shop.charge"
    assert (declined.first_seen.timestamp(), declined.last_seen.timestamp()) == (AT, AT + 2)
    # an event type without a known handler is a group of its own, the latest of equals first
    assert (shipped.entry_ids, shipped.handler) == (["d"], None)
    assert (missing.entry_ids, missing.exception_type, missing.top_frame) == (
        ["b"],
        "builtins.KeyError",
        "",
    )


# -- merge patch (RFC 7386) -------------------------------------------------------------------


RFC_7386_EXAMPLES = [
    # Appendix A, every row: original, patch, result
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    # Section 3's example
    (
        {
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged",
        },
        {
            "title": "Hello!",
            "phoneNumber": "+01-123-456-7890",
            "author": {"familyName": None},
            "tags": ["example"],
        },
        {
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890",
        },
    ),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_7386_EXAMPLES)
def test_merge_patch_follows_rfc_7386(original: Any, patch: Any, result: Any) -> None:
    before = json.dumps(original)
    assert merge_patch(original, patch) == result
    assert json.dumps(original) == before  # the original is not changed


# -- on a bus -----------------------------------------------------------------------------


class Declined(Event, type="card.declined"):
    n: int


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bus.db'}"
        return
    name = f"memory://history-{uuid.uuid4().hex}"
    yield name
    MemoryBroker.discard(name)


async def _one_entry(letters: DeadLetters, replays: int) -> DeadLetter:
    async def back() -> bool:
        entries = await letters.list()
        return len(entries) == 1 and entries[0].replays == replays

    await eventually(back, 10, f"the entry back with {replays} replay(s)")
    [entry] = await letters.list()
    return entry


async def test_history_survives_replay_retries_and_a_second_dead_lettering(url: str) -> None:
    # Given a handler that fails every attempt, retried once, on a bus poisoning after 1 replay
    bus = Bus(url, poison_after=1)
    runs: list[tuple[int, dict[str, str]]] = []

    @bus.subscribe("card.declined", group="billing", retry=Retry(attempts=2, base=0.01))
    async def charge(event: Declined, ctx: Context) -> None:
        runs.append((ctx.attempt, dict(ctx.headers)))
        raise ValueError(f"declined on attempt {ctx.attempt}")

    async with bus:
        await bus.publish(Declined(n=1), headers={"tenant": "acme"})
        letters = bus.dead_letters("billing")
        first = await _one_entry(letters, 0)

        # When it is replayed, retried, and dead-lettered again
        assert await letters.replay([first.entry_id]) == 1
        second = await _one_entry(letters, 1)

    # Then the second entry has both failures, each after two attempts, and is poisoned
    assert [(f.attempts, f.message, f.replayed) for f in second.history] == [
        (2, "declined on attempt 2", False),
        (2, "declined on attempt 2", True),
    ]
    assert second.poisoned and not first.poisoned
    assert second.history[0] == first.history[0]
    # and every delivery showed the handler the event's own header only
    assert [attempt for attempt, _ in runs] == [1, 2, 1, 2]
    assert all(headers == {"tenant": "acme"} for _, headers in runs)


async def test_hostile_history_headers_from_a_producer_do_not_break_listing(url: str) -> None:
    # Given a producer that sets our history headers to garbage
    bus = Bus(url)

    @bus.subscribe("card.declined", group="billing", retry=Retry(attempts=1))
    async def charge(event: Declined) -> None:
        raise ValueError("declined")

    hostile = {HISTORY_HEADER: "[" * 10_000, REPLAYS_HEADER: "NaN"}
    async with bus:
        await bus.publish(Declined(n=1), headers=hostile)
        letters = bus.dead_letters("billing")

        # When its dead letter is listed, grouped and replayed
        entry = await _one_entry(letters, 0)
        groups = await letters.groups()
        assert await letters.replay(all=True) == 1
        again = await _one_entry(letters, 1)

    # Then it has its own failure only, and the replay wrote a clean history
    assert [f.message for f in entry.history] == ["declined"]
    assert [g.count for g in groups] == [1]
    assert [f.replayed for f in again.history] == [False, True]
    assert not math.isnan(again.history[0].at.timestamp())
