"""Fixtures of the CLI tests: a broker file, the CLI in-process, worker subprocesses."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.support import Child, Children, wait_for
from tidings import Bus
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


    @bus.subscribe("test.nap", group="napper")
    async def on_nap(event: dict) -> None:
        (OUT / f"nap-{event['n']}-started").write_text("")
        await asyncio.sleep(event["seconds"])
        (OUT / f"nap-{event['n']}-finished").write_text(str(os.getpid()))


    @bus.subscribe("test.fail", group="failing", retry=Retry(attempts=2, base=0.01))
    async def on_fail(event: dict) -> None:
        if (OUT / "broken").exists():
            raise RuntimeError(f"boom {event['n']}")
        (OUT / f"fixed-{event['n']}").write_text("")
    """
)


def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in this process, as a user would type `tidings ARGS`."""
    return CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)


def create_broker(url: str) -> str:
    """Create the embedded broker file of `url` (no groups), as a worker starting would:
    the inspecting commands never create one."""

    async def go() -> None:
        bus = Bus(url, consume=False)
        await bus.start()
        await bus.close()

    asyncio.run(go())
    return url


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh embedded broker file, created."""
    return create_broker(f"sqlite:///{tmp_path / 'bus.db'}")


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


def declare(url: str, *groups: str, pattern: str = "test.#", name: str = "tidings") -> None:
    """Create `groups` on the broker (of the bus `name`), as a worker starting would."""
    bus = Bus(url, name=name, consume=False)
    for group in groups:

        async def handler(event: dict[str, Any]) -> None:
            pass

        handler.__qualname__ = f"handler_{len(bus.groups)}"
        bus.subscribe(pattern, group=group)(handler)

    async def go() -> None:
        await bus.start()
        await bus.close()

    asyncio.run(go())


def stop(child: Child, timeout: float = 30.0) -> None:
    """SIGTERM `child` and fail, showing its output, unless it exits 0 within `timeout`."""
    child.signal(signal.SIGTERM)
    child.expect_exit(0, timeout)


class SessionChild(Child):
    """A `Child` in a session (and process group) of its own, so a test can signal its
    whole process group, as a service manager or a terminal does, without hitting the
    test runner."""

    def __init__(
        self, args: list[str], *, log: Path, cwd: Path | None = None, env: dict[str, str]
    ) -> None:
        self.args = list(args)
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class Workers:
    """`tidings` child processes in the test's directory, running the test application
    (their output is shown when the test fails; see `tests.support.Children`)."""

    def __init__(self, children: Children, tmp_path: Path, url: str, out: Path) -> None:
        (tmp_path / "app.py").write_text(APP)
        self.children = children
        self.cwd = tmp_path
        self.url = url
        self.env = {"TIDINGS_URL": url, "TIDINGS_TEST_OUT": str(out)}

    def start(self, *args: str, env: dict[str, str] | None = None) -> Child:
        """`tidings ARGS`, started."""
        return self.children.tidings(*args, cwd=self.cwd, **{**self.env, **(env or {})})

    def start_in_session(self, *args: str) -> Child:
        """`tidings ARGS`, started in a session of its own (see `SessionChild`)."""
        kids = self.children
        argv = [sys.executable, "-m", "tidings", *args]
        log = kids.tmp_path / f"child-{len(kids.started)}.log"
        child = SessionChild(argv, log=log, cwd=self.cwd, env={**kids.env, **self.env})
        kids.started.append(child)
        return child

    def wait_for_consumers(self, worker: Child, expected: dict[str, int]) -> None:
        """Wait until the groups have the consumers `expected` (failing if `worker` exits)."""

        def ready() -> bool:
            status = worker.proc.poll()
            if status is not None:
                raise AssertionError(f"worker exited with {status}:\n{worker.log}")
            stats = group_stats(self.url)
            return all(stats.get(g, {}).get("consumers", 0) >= n for g, n in expected.items())

        wait_for(ready, what=f"consumers {expected}")

    def run(
        self,
        *args: str,
        consumers: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
    ) -> Child:
        """`tidings run app:bus ARGS`, once its groups have the consumers expected."""
        worker = self.start("run", "app:bus", *args, env=env)
        expected = consumers or {g: 1 for g in ("pinger", "echo", "recorder", "slow", "failing")}
        self.wait_for_consumers(worker, expected)
        return worker


@pytest.fixture
def workers(children: Children, tmp_path: Path, db_url: str, out: Path) -> Workers:
    """Workers of the test application on the test's broker file."""
    return Workers(children, tmp_path, db_url, out)
