"""Request/reply round trip: tidings' ``bus.request`` on the embedded broker and on RabbitMQ,
against FastStream's ``RabbitBroker.request`` on the same RabbitMQ node.

    python benchmarks/requests.py [--requests 2000] [--rounds 5] [--concurrency 16]
                                  [--contenders sqlite,rabbitmq,faststream] [--url amqp://...]
                                  [--quick]

Every contender answers from a worker in a process of its own (started for its turn, stopped
after it) and is asked from this process, so each round trip crosses two processes, as in
production:

- **tidings sqlite**: ``Bus("sqlite:///...")`` worker and a publish-only requesting bus on one
  file in a temporary directory under the current one (run it from the disk you want to
  measure); the reply comes back through a reply inbox in the file.
- **tidings RabbitMQ**: the same two buses on RabbitMQ (a persistent, confirmed command to the
  group's durable classic queue; the reply by direct reply-to).
- **FastStream**: ``RabbitBroker.request(body, queue=..., persist=True)`` (publisher confirms
  and ``mandatory``, FastStream's defaults; ``persist=True`` to match tidings' persistent
  command) to a subscriber of a durable queue that returns a dict; FastStream answers by
  direct reply-to too. ``logger=None`` on both sides: FastStream otherwise logs two lines per
  message, which tidings does not.

The request carries the same ~900-character payload everywhere; the reply carries the
request's number. Workers handle up to ``--concurrency`` requests at once (the group's
``concurrency``; FastStream's channel prefetch). Two load shapes: *sequential*, one request
at a time (pure latency), and *concurrent*, ``--concurrency`` requesters in a closed loop.
Each round trip is timed from the call to its return; the rate is requests over the time
from the first call to the last reply. A few untimed requests warm each turn up (the reply
inbox opens on the first).

Each round runs every contender once, in an order that rotates from round to round; the
table shows medians over rounds (per-round numbers go to stderr as they come). Without
``--url`` it starts a private RabbitMQ node (``tests/servers.py``) and stops it after.
Not part of the pass/fail tests; a smoke test runs it with ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run by path, Python puts this directory first on sys.path, where this file would shadow the
# `requests` package for anything that imports it; the benchmarks package is reached from ROOT.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from benchmarks._load import DEFAULT_PAYLOAD  # noqa: E402
from benchmarks._machine import _rabbitmq_version, describe  # noqa: E402
from benchmarks._measure import Spread, percentile, rotation  # noqa: E402
from benchmarks._rabbitmq_clients import broker_url  # noqa: E402
from tidings import Bus, Command, Event  # noqa: E402

GROUP = "quotes"
PAYLOAD = "x" * DEFAULT_PAYLOAD
TIMEOUT = 30.0
WARMUP = 20
READY_TIMEOUT = 60.0
SHAPES = ("sequential", "concurrent")
RT = ("p50", "p99")


class Quote(Command, type="bench.quote"):
    """The request."""

    n: int
    payload: str


class Quoted(Event, type="bench.quoted"):
    """The reply."""

    n: int


@dataclass(frozen=True)
class Contender:
    """One library and broker under test: its label and whether it runs on RabbitMQ."""

    key: str
    label: str
    rabbitmq: bool


CONTENDERS = {
    c.key: c
    for c in (
        Contender("sqlite", "tidings sqlite", rabbitmq=False),
        Contender("rabbitmq", "tidings RabbitMQ", rabbitmq=True),
        Contender("faststream", "FastStream RabbitMQ", rabbitmq=True),
    )
}


@dataclass(frozen=True)
class Target:
    """Where a contender's worker and requester meet: broker URL and namespace."""

    url: str
    namespace: str
    management_url: str | None

    def bus(self, *, consume: bool) -> Bus:
        options: dict[str, Any] = {}
        if self.management_url and self.url.startswith("amqp"):
            options["management_url"] = self.management_url
        return Bus(self.url, name=self.namespace, consume=consume, **options)

    @property
    def queue(self) -> str:
        return f"{self.namespace}.quotes"


# -- the workers (`--serve`, in a process of their own) ---------------------------------------


async def _until_terminated(ready: Callable[[], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready()
    await stop.wait()


async def serve_tidings(target: Target, concurrency: int, ready: Callable[[], None]) -> None:
    bus = target.bus(consume=True)

    @bus.subscribe("bench.quote", group=GROUP, concurrency=concurrency)
    async def quote(request: Quote) -> Quoted:
        return Quoted(n=request.n)

    async with bus:
        await _until_terminated(ready)


async def serve_faststream(target: Target, concurrency: int, ready: Callable[[], None]) -> None:
    from faststream import AckPolicy
    from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

    broker = RabbitBroker(
        target.url, logger=None, default_channel=Channel(prefetch_count=concurrency)
    )

    @broker.subscriber(RabbitQueue(target.queue, durable=True), ack_policy=AckPolicy.ACK)
    async def quote(body: dict[str, Any]) -> dict[str, Any]:
        return {"n": body["n"]}

    await broker.start()
    try:
        await _until_terminated(ready)
    finally:
        await broker.stop()


def serve(argv: list[str]) -> None:
    """``--serve KEY URL NAMESPACE CONCURRENCY [MANAGEMENT_URL]``: answer until terminated,
    printing ``ready`` on stdout once the worker consumes."""
    key, url, namespace, concurrency, *management = argv
    target = Target(url, namespace, management[0] if management else None)
    server = serve_faststream if key == "faststream" else serve_tidings

    def ready() -> None:
        print("ready", flush=True)

    asyncio.run(server(target, int(concurrency), ready))


@contextlib.contextmanager
def worker(key: str, target: Target, concurrency: int, log: Path) -> Iterator[None]:
    """A worker process of contender `key` for the block, once it says it is ready."""
    args = [key, target.url, target.namespace, str(concurrency)]
    args += [target.management_url] if target.management_url else []
    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve", *args], stdout=subprocess.PIPE, stderr=stderr
        )
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT)
        if not ready or process.stdout.readline().strip() != b"ready":
            raise SystemExit(f"the {key} worker did not start:\n{log.read_text()[-3000:]}")
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


# -- the requests (this process) ----------------------------------------------------------------

Ask = Callable[[int], Awaitable[object]]


@dataclass(frozen=True)
class Result:
    """One shape of one turn: round-trip p50 and p99 (ms) and requests per second."""

    p50: float
    p99: float
    rate: float


Results = dict[str, list[dict[str, Result]]]  # contender -> a shape's result, per round


async def timed(ask: Ask, count: int, in_flight: int) -> Result:
    """`count` requests, `in_flight` requesters each asking one at a time until all are done."""
    latencies: list[float] = []
    numbers = iter(range(count))

    async def requester() -> None:
        for n in numbers:
            started = time.perf_counter()
            await ask(n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(requester() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    return Result(
        percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000, count / elapsed
    )


async def shapes(ask: Ask, args: argparse.Namespace) -> dict[str, Result]:
    for n in range(WARMUP):
        await ask(-1 - n)
    return {
        "sequential": await timed(ask, args.requests, 1),
        "concurrent": await timed(ask, args.requests, args.concurrency),
    }


async def ask_tidings(target: Target, args: argparse.Namespace) -> dict[str, Result]:
    async with target.bus(consume=False) as bus:

        async def ask(n: int) -> object:
            reply = await bus.request(Quote(n=n, payload=PAYLOAD), to=GROUP, timeout=TIMEOUT)
            if not isinstance(reply, Quoted) or reply.n != n:
                raise SystemExit(f"request {n} got the reply {reply!r}")
            return reply

        return await shapes(ask, args)


async def ask_faststream(target: Target, args: argparse.Namespace) -> dict[str, Result]:
    from faststream.rabbit import RabbitBroker

    broker = RabbitBroker(target.url, logger=None)
    await broker.connect()
    try:

        async def ask(n: int) -> object:
            message = await broker.request(
                {"n": n, "payload": PAYLOAD}, queue=target.queue, persist=True, timeout=TIMEOUT
            )
            reply = await message.decode()
            if not isinstance(reply, dict) or reply.get("n") != n:
                raise SystemExit(f"request {n} got the reply {reply!r}")
            return reply

        return await shapes(ask, args)
    finally:
        await broker.stop()


async def cleanup(url: str, namespace: str) -> None:
    """Delete what the RabbitMQ contenders declared under `namespace` (on a given node)."""
    import aio_pika

    from tidings.transports.rabbitmq._wire import TIERS, Names

    names = Names(namespace)
    queues = [names.queue(GROUP), names.dlq(GROUP), f"{namespace}.quotes"]
    queues += [names.delay_queue(GROUP, tier) for tier, _ in TIERS]
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in (names.exchange, names.direct, names.delay_exchange):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


# -- the run ---------------------------------------------------------------------------------


def table(results: Results, args: argparse.Namespace) -> str:
    lines = [
        f"request/reply round trip, {args.requests:,} requests of ~1 KiB a shape, "
        f"medians of {args.rounds} round(s) (req/s: lowest-highest round in parentheses)",
        f"{'':<20} | {'sequential (1 in flight)':^40} | "
        f"{f'concurrent ({args.concurrency} in flight)':^40}",
        f"{'contender':<20} |" + f" {'p50 ms':>8} {'p99 ms':>8} {'req/s':>21} |" * 2,
    ]
    lines.append("-" * len(lines[-1]))
    for key, rounds in results.items():
        cells = []
        for shape in SHAPES:
            p50, p99 = (statistics.median(getattr(r[shape], f) for r in rounds) for f in RT)
            rate = Spread.of([r[shape].rate for r in rounds]).text()
            cells.append(f" {p50:>8.2f} {p99:>8.2f} {rate:>21} |")
        lines.append(f"{CONTENDERS[key].label:<20} |" + "".join(cells))
    return "\n".join(line.rstrip(" |") for line in lines)


def measure(
    args: argparse.Namespace, url: str | None, management: str | None, scratch: Path
) -> Results:
    run_id = uuid.uuid4().hex[:8]
    results: Results = {key: [] for key in args.contenders}
    for r in range(args.rounds):
        for key in rotation(args.contenders, r):
            namespace = f"req{run_id}r{r}{key}"
            if CONTENDERS[key].rabbitmq:
                assert url is not None
                target = Target(url, namespace, management)
            else:
                target = Target(f"sqlite:///{scratch / f'{namespace}.db'}", namespace, None)
            asker = ask_faststream if key == "faststream" else ask_tidings
            with worker(key, target, args.concurrency, scratch / f"{namespace}.log"):
                outcome = asyncio.run(asker(target, args))
            if CONTENDERS[key].rabbitmq:
                asyncio.run(cleanup(target.url, namespace))
            results[key].append(outcome)
            cells = "  ".join(
                f"{s} p50 {v.p50:.2f} ms p99 {v.p99:.2f} ms {v.rate:,.0f}/s"
                for s, v in outcome.items()
            )
            print(f"  round {r + 1} {CONTENDERS[key].label:<20} {cells}", file=sys.stderr)
    return results


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests a shape")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--url", help="an existing RabbitMQ (default: start a private node)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, 64 requests")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds = 64, 1
    args.contenders = [k.strip().lower() for k in args.contenders.split(",") if k.strip()]
    unknown = sorted(set(args.contenders) - set(CONTENDERS))
    if unknown or not args.contenders:
        parser.error(f"unknown contenders {unknown}; choose from {', '.join(CONTENDERS)}")
    rabbitmq = any(CONTENDERS[k].rabbitmq for k in args.contenders)
    with (
        broker_url(args.url) if rabbitmq else contextlib.nullcontext((None, None)) as (url, mgmt),
        tempfile.TemporaryDirectory(prefix=".bench-requests-", dir=Path.cwd()) as scratch,
    ):
        results = measure(args, url, mgmt, Path(scratch))
        machine = describe(Path(scratch), None)
        version = asyncio.run(_rabbitmq_version(url)) if url else "not used"
    print(table(results, args))
    print(
        f"machine: {machine['CPU']}, {machine['cores']} cores, {machine['memory']}, "
        f"{machine['OS']}; disk: {machine['disk (embedded broker files)']}; "
        f"Python {machine['Python']}, tidings {machine['tidings']}, SQLite {machine['SQLite']}, "
        f"RabbitMQ {version}, FastStream {machine['FastStream']}, "
        f"aio-pika {machine['aio-pika']}"
    )


if __name__ == "__main__":
    main()
