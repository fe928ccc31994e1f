"""Raw SQLite on the disk being measured, the embedded broker's limits: 1 KiB rows inserted
one or 256 per commit (publishing alone), the same at a fixed rate (latency), and the
durable batched cycle of a queue (one process inserting, another claiming and deleting)."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from ._load import WINDOW

RAW_ROW = 1024
IDLE_POLL = 0.0005  # the cycle's consumer, when it finds the table empty
BUSY_TIMEOUT = 30.0


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _raw(path: Path) -> sqlite3.Connection:
    conn = _connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    return conn


def _insert(conn: sqlite3.Connection, body: bytes, rows: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t (body) VALUES (?)", [(body,)] * rows)
    conn.execute("COMMIT")


def raw_commits(path: Path, count: int, rows_per_commit: int) -> float:
    """Rows/s inserting 1 KiB rows, `rows_per_commit` per transaction."""
    conn = _raw(path)
    body = os.urandom(RAW_ROW)
    start = time.perf_counter()
    for first in range(0, count, rows_per_commit):
        _insert(conn, body, min(rows_per_commit, count - first))
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


def raw_latency(path: Path, rate: float, count: int, *, group: bool) -> list[float]:
    """Arrival-to-commit latencies (seconds) of rows arriving at `rate`/s, committed one
    per transaction, or (`group`) all that arrived since the last commit, up to 256."""
    conn = _raw(path)
    body = os.urandom(RAW_ROW)
    latencies: list[float] = []
    start = time.perf_counter()
    n = 0
    while n < count:
        now = time.perf_counter()
        due = min(count, int((now - start) * rate) + 1)
        if due <= n:
            time.sleep(start + n / rate - now)
            continue
        last = min(due, n + WINDOW) if group else n + 1
        _insert(conn, body, last - n)
        done = time.perf_counter()
        latencies += [done - (start + i / rate) for i in range(n, last)]
        n = last
    conn.close()
    return latencies


CLAIM = "DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY id LIMIT ?) RETURNING id, body"


def _claimer(path: str, count: int, results: Any) -> None:
    """The cycle's consumer process: claim and delete up to 256 rows per transaction
    (reading their bodies) until `count` were taken; put the time of the last commit."""
    conn = _connect(Path(path))
    results.put("ready")
    taken = 0
    while taken < count:
        # A read first: an empty poll takes no write lock from the producer.
        if conn.execute("SELECT 1 FROM t LIMIT 1").fetchone() is None:
            time.sleep(IDLE_POLL)
            continue
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(CLAIM, (WINDOW,)).fetchall()
        conn.execute("COMMIT")
        taken += len(rows)
    results.put(time.time())
    conn.close()


def raw_cycle(path: Path, count: int, timeout: float = 120.0) -> float:
    """Rows/s end to end of the durable batched cycle: this process inserts 1 KiB rows,
    256 per commit, while another claims and deletes them, 256 per commit; timed from the
    first insert to the last delete's commit."""
    _raw(path).close()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    claimer = context.Process(target=_claimer, args=(str(path), count, results), daemon=True)
    claimer.start()
    try:
        if results.get(timeout=timeout) != "ready":
            raise RuntimeError("the raw SQLite claimer did not start")
        conn = _connect(path)
        body = os.urandom(RAW_ROW)
        start = time.time()
        for first in range(0, count, WINDOW):
            _insert(conn, body, min(WINDOW, count - first))
        conn.close()
        last = float(results.get(timeout=timeout))
    finally:
        claimer.join(timeout=10)
        if claimer.is_alive():
            claimer.kill()
            claimer.join()
    return count / (last - start)
