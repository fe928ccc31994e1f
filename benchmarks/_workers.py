"""Worker processes for the benchmarks (``tidings run benchmarks.sink:bus``, as a user runs
it, or a client's consumer from `benchmarks.consumer`): started and stopped around a run,
what they handled reported over TCP (`Tally` in the worker, `Reports` in the harness), and
their memory read from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
_STARTED = re.compile(r"worker started: .*\(pid (\d+)\)")
REPORT_EVERY = 0.02


@dataclass
class Handled:
    """What the workers of one run handled: how many, first and last arrival (``time.time``)
    over all of them, and every publish-to-handler latency in seconds."""

    count: int = 0
    first: float = 0.0
    last: float = 0.0
    latencies: list[float] = field(default_factory=list)


class Reports:
    """A TCP listener on localhost that collects the JSON lines workers' `Tally` send."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._changed = threading.Condition()
        self._latest: dict[int, dict[str, float]] = {}
        self._latencies: list[float] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                report = json.loads(line)
                with self._changed:
                    self._latest[int(report["pid"])] = report
                    self._latencies.extend(report["latencies"])
                    self._changed.notify_all()

    def _count(self) -> int:
        return int(sum(r["count"] for r in self._latest.values()))

    def _handled(self) -> Handled:
        reports = list(self._latest.values())
        return Handled(
            count=int(sum(r["count"] for r in reports)),
            first=min((r["first"] for r in reports), default=0.0),
            last=max((r["last"] for r in reports), default=0.0),
            latencies=list(self._latencies),
        )

    def wait(self, expected: int, timeout: float) -> Handled:
        """Block until the workers together handled `expected` events; what they saw."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._count() >= expected, timeout):
                seen = self._count()
                raise TimeoutError(f"workers handled {seen} of {expected} events in {timeout}s")
            return self._handled()

    def close(self) -> None:
        self._server.close()


@dataclass(frozen=True)
class Memory:
    """Resident set size of a process now (``VmRSS``) and at its peak (``VmHWM``), MiB."""

    rss: float
    peak: float

    @classmethod
    def of(cls, pid: int) -> Memory:
        values: dict[str, float] = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024  # kB -> MiB
        return cls(rss=values["VmRSS"], peak=values["VmHWM"])


class Workers:
    """Worker processes (`argv`, reporting to `reports`) for the length of a ``with``
    block: entering waits until each of the `processes` logged ``worker started: ...
    (pid N)`` on stderr, as ``tidings run --log-format json`` does."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        processes: int = 1,
        start_timeout: float = 60.0,
    ) -> None:
        self.argv = argv
        self.env = env or {}
        self.processes = processes
        self.start_timeout = start_timeout
        self.pids: list[int] = []
        self.reports = Reports()
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._tail: deque[str] = deque(maxlen=40)
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Workers:
        env = {**os.environ, **self.env, "BENCH_REPORT": self.reports.address}
        self._process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        try:
            self._wait_started()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _read_log(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            self._tail.append(line.rstrip())
            self._lines.put(line)
        self._lines.put(None)

    def _wait_started(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while len(self.pids) < self.processes:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"workers did not start in {self.start_timeout:g}s") from None
            if line is None:
                raise RuntimeError("the workers exited:\n" + "\n".join(self._tail))
            with contextlib.suppress(ValueError):
                found = _STARTED.search(str(json.loads(line).get("message", "")))
                if found:
                    self.pids.append(int(found[1]))

    def wait(self, expected: int, timeout: float) -> Handled:
        """What the workers handled, once they handled `expected` events in all."""
        try:
            return self.reports.wait(expected, timeout)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; worker log:\n" + "\n".join(self._tail)) from None

    def memory(self) -> list[Memory]:
        """Memory of each worker process (not of the supervisor of several)."""
        return [Memory.of(pid) for pid in self.pids]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        self.reports.close()
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def sink_workers(
    url: str,
    *,
    processes: int = 1,
    name: str = "bench",
    concurrency: int = 256,
    management_url: str | None = None,
) -> Workers:
    """``tidings run benchmarks.sink:bus --url URL --processes N``."""
    env = {"BENCH_BUS_NAME": name, "BENCH_CONCURRENCY": str(concurrency)}
    if management_url:
        env["BENCH_MANAGEMENT_URL"] = management_url
    argv = [sys.executable, "-m", "tidings", "--log-level", "INFO", "--log-format", "json"]
    argv += ["run", "benchmarks.sink:bus", "--url", url, "--processes", str(processes)]
    return Workers(argv, env=env, processes=processes)


class Tally:
    """The worker side of `Reports`: what this process handled, sent to the harness at
    ``address`` (``BENCH_REPORT``) every 20 ms while events arrive."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or os.environ.get("BENCH_REPORT")
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []
        self._reporter: asyncio.Task[None] | None = None

    def record(self, sent_at: float) -> None:
        """Note one event published at `sent_at` (``time.time()``) and handled now."""
        now = time.time()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        self.latencies.append(now - sent_at)
        if self._reporter is None and self.address:
            self._reporter = asyncio.get_running_loop().create_task(self._report())

    async def _report(self) -> None:
        assert self.address is not None
        host, _, port = self.address.rpartition(":")
        _, writer = await asyncio.open_connection(host, int(port))
        sent = 0
        while True:
            await asyncio.sleep(REPORT_EVERY)
            if self.count == sent:
                continue
            sent = self.count
            latencies, self.latencies = self.latencies, []
            line = {
                "pid": os.getpid(),
                "count": sent,
                "first": self.first,
                "last": self.last,
                "latencies": latencies,
            }
            writer.write(json.dumps(line).encode() + b"\n")
            await writer.drain()
