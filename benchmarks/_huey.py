"""huey on SQLite (`SqliteHuey`), what a user might pick for a server-less durable task
queue: one process enqueueing tasks of about 1 KiB, one huey consumer process running a
no-op task; tasks/s end to end.

Settings: ``SqliteHuey(fsync=True)``, huey's WAL journal with ``synchronous=FULL`` as
tidings and raw SQLite run, and ``results=False`` (the task returns nothing, so nothing
would be stored anyway). The consumer is huey's own `Consumer` with `CONSUMER` below:
worker threads (huey's default type), no periodic scheduler, and a short polling interval
so an empty queue is looked at again within milliseconds rather than huey's default 0.1 s
growing to 10 s. Each enqueue is one transaction: huey has no batch enqueue.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

from huey import SqliteHuey

from ._load import DEFAULT_PAYLOAD

TASK = "bench.tick"
CONSUMER: dict[str, Any] = {
    "workers": 2,
    "worker_type": "thread",
    "periodic": False,
    "initial_delay": 0.001,
    "backoff": 1.15,
    "max_delay": 0.01,
    "check_worker_health": False,
}
SETTINGS = "SqliteHuey(fsync=True, results=False), consumer " + ", ".join(
    f"{k}={v}" for k, v in CONSUMER.items()
)


def _huey(path: Path) -> SqliteHuey:
    return SqliteHuey("bench", filename=str(path), fsync=True, results=False)


def _consumer(path: str, count: int, results: Any) -> None:
    """The huey consumer process: run the no-op task until `count` ran, then put the time
    the last one ran (the harness then stops this process)."""
    huey = _huey(Path(path))
    ran = itertools.count(1)  # next() is atomic under the GIL: safe across worker threads
    done = threading.Event()
    last = [0.0]

    @huey.task(name=TASK)
    def tick(n: int, sent_at: float, payload: str) -> None:
        if next(ran) == count:
            last[0] = time.time()
            done.set()

    def report() -> None:
        done.wait()
        results.put(last[0])

    threading.Thread(target=report, daemon=True).start()
    consumer = huey.create_consumer(**CONSUMER)
    results.put("ready")
    consumer.run()


def huey_cycle(path: Path, count: int, timeout: float = 300.0) -> float:
    """Tasks/s from the first enqueue in this process to the last task run by the
    consumer process."""
    huey = _huey(path)

    @huey.task(name=TASK)
    def tick(n: int, sent_at: float, payload: str) -> None:  # runs in the consumer
        pass

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    consumer = context.Process(target=_consumer, args=(str(path), count, results), daemon=True)
    consumer.start()
    try:
        if results.get(timeout=60) != "ready":
            raise RuntimeError("the huey consumer did not start")
        payload = "x" * DEFAULT_PAYLOAD
        start = time.time()
        for n in range(count):
            tick(n, time.time(), payload)
        last = float(results.get(timeout=timeout))
    finally:
        consumer.terminate()  # SIGTERM: huey's immediate shutdown
        consumer.join(timeout=10)
        if consumer.is_alive():
            consumer.kill()
            consumer.join()
    huey.storage.close()
    return count / (last - start)
