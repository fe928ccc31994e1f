"""The transactional outbox: commit-to-handler latency on PostgreSQL, woken by NOTIFY and by
polling alone, and outbox throughput on SQLite and PostgreSQL.

    python benchmarks/outbox.py [--rows 10000] [--per-commit 100] [--rate 50] [--seconds 10]
                                [--rounds 3]

It starts its own PostgreSQL (the tests' private server, restarted with ``fsync=on`` and
``synchronous_commit=on``: durable, as in production); SQLite files (aiosqlite, SQLite's
defaults: rollback journal, ``synchronous=FULL``) go in a temporary directory under the
current one, so run it from the disk you want to measure.

- **Latency**: one transaction a message, committed at ``--rate`` per second for
  ``--seconds``, each message's time taken just before its COMMIT; a handler of the relay's
  bus takes the time again. The relay sends to the embedded broker (a file next to the
  SQLite ones) and its bus consumes. The committing bus is another bus in the same process
  (not started), so the relay learns of a commit as it would from another process:
  *NOTIFY* through PostgreSQL's ``LISTEN``, or *polling only* (the relay's ``LISTEN``
  switched off, as while its connection is down) every ``outbox_poll`` (1 s, the default).
  *Same process* commits through the relay's own bus, whose commit hook wakes it.
- **Throughput**: ``--rows`` messages staged ``--per-commit`` to a transaction (one
  ``publish(..., session=)`` each), to a ``memory://`` broker so the numbers are the
  outbox's own: *staging* with no relay running, *relaying* what was staged (one relay),
  and *both at once* (committing while the relay sends), from the first commit until the
  outbox is empty.

Medians of ``--rounds`` rounds, lowest and highest in parentheses. Not part of the pass/fail
tests; a smoke test runs it on a tiny size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:  # run by path: the benchmarks and tests packages
        sys.path.insert(0, str(path))

import sqlite3  # noqa: E402

from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

import tidings.outbox._outbox as outbox_module  # noqa: E402
from benchmarks._machine import describe  # noqa: E402
from benchmarks._measure import Spread, latency_ms, paced, rotation  # noqa: E402
from benchmarks._postgres import durable_postgres  # noqa: E402
from tidings import Bus, Context, Event  # noqa: E402

MODES = ("NOTIFY", "polling only", "same process")
PHASES = ("staging", "relaying", "both at once")
DRIVERS = ("SQLAlchemy", "asyncpg", "aiosqlite")


class Committed(Event, type="bench.committed"):
    n: int


@contextlib.contextmanager
def no_listen() -> Iterator[None]:
    """Relays started in the block do not LISTEN (they poll, as while LISTEN is down)."""

    class Deaf:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

    listener = outbox_module.Listener
    outbox_module.Listener = Deaf  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        outbox_module.Listener = listener  # type: ignore[misc]


async def _until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.005)


# -- latency -------------------------------------------------------------------------------


async def latency(database: str, broker: str, mode: str, rate: float, count: int) -> list[float]:
    """Commit-to-handler latencies in seconds of `count` messages committed at `rate`/s."""
    name = f"lat{uuid.uuid4().hex[:8]}"
    handled: dict[str, float] = {}
    relay = Bus(broker, name=name, database=database)

    @relay.subscribe("bench.committed", group="latency")
    async def on_committed(event: Committed, ctx: Context) -> None:
        handled[ctx.event_id] = time.perf_counter()

    stager = relay if mode == "same process" else Bus(broker, name=name, database=database)
    stamps: dict[str, float] = {}
    with no_listen() if mode == "polling only" else contextlib.nullcontext():
        async with relay:
            async for n in paced(count + 1, rate):
                async with AsyncSession(stager.database) as session, session.begin():
                    event_id = await stager.publish(Committed(n=n), session=session)
                    stamps[event_id] = time.perf_counter()  # then the block commits

            async def all_handled() -> bool:
                return len(handled) == len(stamps)

            await _until(all_handled, 30 + count / rate, "every message handled")
    if stager is not relay:
        await stager.close()
    first = min(stamps, key=stamps.__getitem__)  # the first warms the connections up
    return [handled[i] - stamps[i] for i in stamps if i != first]


# -- throughput ------------------------------------------------------------------------------


async def _stage(bus: Bus, rows: int, per_commit: int) -> None:
    for first in range(0, rows, per_commit):
        async with AsyncSession(bus.database) as session, session.begin():
            for n in range(first, min(rows, first + per_commit)):
                await bus.publish(Committed(n=n), key=f"k{n % 100}", session=session)


async def throughput(database: str, rows: int, per_commit: int) -> dict[str, float]:
    """Rows per second of each phase (see the module's docstring)."""
    broker = f"memory://outbox-{uuid.uuid4().hex[:8]}"
    relay = Bus(broker, name="bench", database=database, consume=False)

    @relay.subscribe("bench.committed", group="sink")
    async def sink(event: Committed) -> None:
        pass

    stager = Bus(broker, name="bench", database=database)

    async def drained() -> bool:
        return (await relay.outbox_stats()).pending == 0

    await relay.start()  # creates the tables (and declares the group)
    await relay.close()
    # staging alone: nothing relays
    started = time.perf_counter()
    await _stage(stager, rows, per_commit)
    staging = rows / (time.perf_counter() - started)
    # relaying alone, then both at once
    relay = Bus(broker, name="bench", database=database, consume=False)
    relay.subscribe("bench.committed", group="sink")(sink)
    async with relay:
        started = time.perf_counter()
        await _until(drained, 600, "the outbox to drain")
        relaying = rows / (time.perf_counter() - started)
        started = time.perf_counter()
        await _stage(stager, rows, per_commit)
        await _until(drained, 600, "the outbox to drain")
        both = rows / (time.perf_counter() - started)
    await stager.close()
    return {"staging": staging, "relaying": relaying, "both at once": both}


# -- the run ---------------------------------------------------------------------------------


def _latency_rows(results: dict[str, list[list[float]]]) -> list[str]:
    lines = [f"  {'':<14}{'p50':>12}{'p99':>12}{'max':>12}   (ms, median of rounds)"]
    for mode in MODES:
        rounds = [latency_ms(r) for r in results[mode]]
        cells = [Spread.of([r[p] for r in rounds]).median for p in ("p50", "p99", "max")]
        lines.append(f"  {mode:<14}" + "".join(f"{c:>12,.1f}" for c in cells))
    return lines


def _throughput_rows(results: dict[str, list[dict[str, float]]]) -> list[str]:
    lines = [f"  {'':<12}" + "".join(f"{p:>26}" for p in PHASES) + "   (rows/s)"]
    for db, rounds in results.items():
        cells = [Spread.of([r[p] for r in rounds]).text() for p in PHASES]
        lines.append(f"  {db:<12}" + "".join(f"{c:>26}" for c in cells))
    return lines


async def measure(args: argparse.Namespace, postgres: Any, scratch: Path) -> None:
    count = max(1, int(args.rate * args.seconds))
    lat: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
    tput: dict[str, list[dict[str, float]]] = {"SQLite": [], "PostgreSQL": []}
    for r in range(args.rounds):
        for i in range(len(MODES)):
            mode = MODES[(i + r) % len(MODES)]
            broker = f"sqlite:///{scratch / f'broker-{r}-{i}.db'}"
            database = await postgres.create_database()
            lat[mode].append(await latency(database, broker, mode, args.rate, count))
        for db in rotation(list(tput), r):
            if db == "SQLite":
                database = f"sqlite+aiosqlite:///{scratch / f'app-{r}.db'}"
            else:
                database = await postgres.create_database()
            tput[db].append(await throughput(database, args.rows, args.per_commit))
    print(
        f"commit-to-handler latency on PostgreSQL, {count:,} messages at {args.rate:g}/s, "
        f"one per transaction, {args.rounds} round(s)"
    )
    print("\n".join(_latency_rows(lat)))
    print(
        f"outbox throughput, {args.rows:,} messages, {args.per_commit} per transaction, "
        f"memory:// broker, median (lowest-highest) of {args.rounds} round(s)"
    )
    print("\n".join(_throughput_rows(tput)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--per-commit", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with (
        durable_postgres() as (postgres, version),
        tempfile.TemporaryDirectory(prefix=".bench-outbox-", dir=Path.cwd()) as scratch,
    ):
        asyncio.run(measure(args, postgres, Path(scratch)))
        machine = describe(Path(scratch), None)
    drivers = ", ".join(f"{d} {metadata.version(d)}" for d in DRIVERS)
    print(
        f"machine: {machine['CPU']}, {machine['cores']} cores, {machine['memory']}, "
        f"{machine['OS']}; disk: {machine['disk (embedded broker files)']}; "
        f"Python {machine['Python']}, tidings {machine['tidings']}; PostgreSQL {version} "
        f"(fsync on), SQLite {sqlite3.sqlite_version}; {drivers}"
    )


if __name__ == "__main__":
    main()
