"""Idempotency claims on the embedded broker: of two copies of one event in flight at once,
the handler runs once; a copy that failed lets the other run; claims are atomic across
connections and processes, expire, and are released by their holder only."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import eventually
from tidings import Bus, Context, Event, Middleware, Retry
from tidings.testing import ManualClock

from .conftest import OpenTransport

SRC = str(Path(__file__).resolve().parents[3] / "src")


class Charged(Event, type="card.charged"):
    n: int


class Outcomes(Middleware):
    """Records (event id, attempt, outcome kind) of every delivery."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []

    async def consume(self, ctx: Context, call_next):  # type: ignore[no-untyped-def]
        outcome = await call_next(ctx)
        self.seen.append((ctx.event_id, ctx.attempt, outcome.kind))
        return outcome

    def kinds(self, kind: str) -> list[tuple[str, int]]:
        return [(i, a) for i, a, k in self.seen if k == kind]


async def test_two_copies_in_flight_at_once_run_the_handler_once(tmp_path: Path) -> None:
    # Given an idempotent handler that holds every delivery until the test lets it go
    outcomes = Outcomes()
    bus = Bus(f"sqlite:///{tmp_path / 'bus.db'}", middleware=[outcomes])
    gate = asyncio.Event()
    runs: list[str] = []

    @bus.subscribe("card.charged", group="ledger", idempotent=True, concurrency=32)
    async def charge(event: Charged, ctx: Context) -> None:
        runs.append(ctx.event_id)
        await gate.wait()

    async with bus:
        # When twelve events are each published twice at the same moment
        ids = [f"evt-{n}" for n in range(12)]
        await asyncio.gather(*(bus.publish(Charged(n=n), id=ids[n]) for n in [*range(12)] * 2))

        # Then while the first copies run, every second copy waits for their claims
        await eventually(
            lambda: len(runs) == 12 and len(outcomes.kinds("postpone")) == 12,
            what="one copy of each running, the other postponed",
        )
        assert sorted(runs) == sorted(ids)

        # And once the first copies succeed, the second ones are duplicates, attempt 1
        gate.set()
        await eventually(lambda: len(outcomes.kinds("duplicate")) == 12, what="the duplicates")
        assert sorted(runs) == sorted(ids)
        assert sorted(outcomes.kinds("duplicate")) == sorted((i, 1) for i in ids)
        await eventually(lambda: _settled(bus), what="every copy acknowledged")


async def _settled(bus: Bus) -> bool:
    [stats] = await bus.stats()
    return (stats.ready, stats.in_flight, stats.scheduled, stats.dead) == (0, 0, 0, 0)


async def test_a_copy_that_failed_lets_the_other_copy_run(tmp_path: Path) -> None:
    # Given an idempotent handler whose first run fails (and is not retried)
    outcomes = Outcomes()
    bus = Bus(f"sqlite:///{tmp_path / 'bus.db'}", middleware=[outcomes])
    gate = asyncio.Event()
    runs: list[int] = []

    @bus.subscribe(
        "card.charged", group="ledger", idempotent=True, concurrency=4, retry=Retry(attempts=1)
    )
    async def charge(event: Charged) -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            await gate.wait()
            raise ValueError("card service down")

    async with bus:
        # When two copies of one event are in flight, the first one failing
        await asyncio.gather(*(bus.publish(Charged(n=1), id="evt-1") for _ in range(2)))
        await eventually(lambda: outcomes.kinds("postpone"), what="the second copy postponed")
        gate.set()

        # Then the second copy runs the handler after all, and succeeds
        await eventually(lambda: outcomes.kinds("ack"), what="the second copy's run")
        assert runs == [1, 2]
        assert outcomes.kinds("dead_letter") == [("evt-1", 1)]
        assert outcomes.kinds("ack") == [("evt-1", 1)]  # postponing did not count an attempt


async def test_claims_are_atomic_across_connections(open_transport: OpenTransport) -> None:
    # Given two transports (two writer connections) on one file
    stores = [(await open_transport()).dedupe_store() for _ in range(2)]

    # When each claims each of twelve ids ten times at once
    ids = [f"evt-{n}" for n in range(12)]
    claims = [
        (i, store.claim("ledger", i, 30.0)) for i in ids for store in stores for _ in range(10)
    ]
    results = await asyncio.gather(*(claim for _, claim in claims))

    # Then exactly one claim of each id got it, and the others found it busy
    for event_id in ids:
        got = [r for (i, _), r in zip(claims, results, strict=True) if i == event_id]
        assert sorted(got) == ["busy"] * 19 + ["claimed"]


async def test_a_claim_expires_completes_and_is_released_by_its_holder_only(
    open_transport: OpenTransport,
) -> None:
    clock = ManualClock()
    holder = (await open_transport(clock=clock)).dedupe_store()
    other = (await open_transport(clock=clock)).dedupe_store()

    # A live claim is busy for everyone, is not "seen", and only its holder releases it
    assert await holder.claim("g", "e1", 10.0) == "claimed"
    assert await other.claim("g", "e1", 10.0) == "busy"
    assert not await other.seen("g", "e1")
    await other.release("g", "e1")
    assert await other.claim("g", "e1", 10.0) == "busy"
    await holder.release("g", "e1")
    assert await other.claim("g", "e1", 10.0) == "claimed"

    # An expired claim is free
    clock.advance(10.0)
    assert await holder.claim("g", "e1", 10.0) == "claimed"

    # A completed claim is done until its ttl ends, and releasing never drops it
    await holder.complete("g", "e1", 60.0)
    await holder.release("g", "e1")
    assert await other.seen("g", "e1")
    assert await other.claim("g", "e1", 10.0) == "done"
    clock.advance(60.0)
    assert not await other.seen("g", "e1")
    assert await other.claim("g", "e1", 10.0) == "claimed"


# Each child opens the file, waits for "go" on stdin, claims every id once, and prints the
# ids it got.
_CLAIMER = textwrap.dedent(
    """
    import asyncio, sys
    from tidings.transports.sqlite import create_transport

    async def main(url: str) -> None:
        transport = create_transport(url, {})
        await transport.open()
        store = transport.dedupe_store()
        print("ready", flush=True)
        sys.stdin.readline()
        ids = [f"evt-{n}" for n in range(40)]
        results = await asyncio.gather(*(store.claim("ledger", i, 30.0) for i in ids))
        print(" ".join(i for i, r in zip(ids, results) if r == "claimed"), flush=True)
        await transport.close()

    asyncio.run(main(sys.argv[1]))
    """
)


def test_processes_claiming_one_id_at_once_get_it_once(tmp_path: Path) -> None:
    # Given four processes ready to claim the same forty ids in one file
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    env = {**os.environ, "PYTHONPATH": SRC}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, url],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"

        # When they all claim at once
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        got = [child.communicate(timeout=30)[0].split() for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()

    # Then each id was claimed by exactly one of them
    assert [child.returncode for child in children] == [0] * 4
    claimed = [i for ids in got for i in ids]
    assert sorted(claimed) == sorted(f"evt-{n}" for n in range(40))
