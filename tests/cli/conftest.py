"""Fixtures of the CLI tests: a broker file, the CLI in-process, worker subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tidings._cli import app

# The application the workers run: written into each test's directory and imported by
# `tidings run app:bus` from there (the current directory goes on sys.path).
APP = textwrap.dedent(
    """
    import asyncio
    import json
    import os
    from pathlib import Path

    from tidings import Bus, Context, Event, Retry

    OUT = Path(os.environ["TIDINGS_TEST_OUT"])
    bus = Bus()


    class Ping(Event, type="test.ping"):
        n: int


    @bus.subscribe("test.ping", group="pinger")
    async def on_ping(event: Ping, ctx: Context) -> None:
        record = {"n": event.n, "id": ctx.event_id, "replayed": ctx.replayed, "pid": os.getpid()}
        (OUT / f"pinger-{event.n}.json").write_text(json.dumps(record))


    @bus.subscribe("test.ping", group="echo")
    async def on_echo(event: Ping) -> None:
        (OUT / f"echo-{event.n}").write_text("")


    @bus.subscribe("test.record", group="recorder")
    async def on_record(event: dict, ctx: Context) -> None:
        record = {"data": event, "id": ctx.event_id, "key": ctx.key, "type": ctx.envelope.type}
        (OUT / f"record-{ctx.event_id}.json").write_text(json.dumps(record))


    @bus.subscribe("test.slow", group="slow")
    async def on_slow(event: dict) -> None:
        (OUT / "slow-started").write_text("")
        await asyncio.sleep(event["seconds"])
        (OUT / "slow-finished").write_text("")


    @bus.subscribe("test.fail", group="failing", retry=Retry(attempts=2, base=0.01))
    async def on_fail(event: dict) -> None:
        if (OUT / "broken").exists():
            raise RuntimeError(f"boom {event['n']}")
        (OUT / f"fixed-{event['n']}").write_text("")
    """
)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `predicate` until it returns something true, and return it; fail after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.03)


def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in this process, as a user would type `tidings ARGS`."""
    return CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh embedded broker file."""
    return f"sqlite:///{tmp_path / 'bus.db'}"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where the test application's handlers write what they did."""
    path = tmp_path / "out"
    path.mkdir()
    return path


def group_stats(url: str) -> dict[str, dict[str, Any]]:
    """`tidings queues --json`, by group."""
    result = cli("queues", "--json", "--url", url)
    assert result.exit_code == 0, result.output
    return {row["group"]: row for row in json.loads(result.stdout)}


class Worker:
    """A `tidings ...` subprocess; its stdout and stderr go to a file."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings", *args],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout}s:\n{self.log}") from None

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()


class Workers:
    """Starts `tidings` subprocesses in the test's directory, running the test application."""

    def __init__(self, tmp_path: Path, url: str, out: Path) -> None:
        (tmp_path / "app.py").write_text(APP)
        self.cwd = tmp_path
        self.url = url
        self.env = {
            **os.environ,
            "TIDINGS_URL": url,
            "TIDINGS_TEST_OUT": str(out),
            "PYTHONUNBUFFERED": "1",
        }
        self.started: list[Worker] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> Worker:
        log = self.cwd / f"worker-{len(self.started)}.log"
        worker = Worker(list(args), self.cwd, {**self.env, **(env or {})}, log)
        self.started.append(worker)
        return worker

    def run(
        self,
        *args: str,
        consumers: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
    ) -> Worker:
        """`tidings run app:bus ARGS`, once its groups have the consumers expected."""
        worker = self.start("run", "app:bus", *args, env=env)
        expected = consumers or {g: 1 for g in ("pinger", "echo", "recorder", "slow", "failing")}

        def ready() -> bool:
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited with {worker.proc.returncode}:\n{worker.log}")
            stats = group_stats(self.url)
            return all(stats.get(g, {}).get("consumers", 0) >= n for g, n in expected.items())

        wait_for(ready, what=f"consumers {expected}")
        return worker

    def close(self) -> None:
        for worker in self.started:
            worker.close()


@pytest.fixture
def workers(tmp_path: Path, db_url: str, out: Path) -> Iterator[Workers]:
    started = Workers(tmp_path, db_url, out)
    yield started
    started.close()
