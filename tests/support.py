"""The one support module of the test suite: waiting for a condition, a recording inbox for
transport-level tests, and child processes whose output is shown when a test fails.

Asynchronous waits and the recording inbox are the ones `tidings.contract` ships (a
third-party transport uses the same), so there is one implementation of each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tidings.contract import Inbox, eventually

__all__ = ["Child", "Children", "Inbox", "eventually", "wait_for"]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `predicate` (synchronous) every 20 ms until it returns something true, and
    return that; fail with `AssertionError` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(0.02)


class Child:
    """A child process whose stdout and stderr go to one log file.

    The log is part of every failure this class raises, and `Children` prints it when the
    test that started the process fails, so a crash in the child is never silent.
    """

    def __init__(
        self, args: Sequence[str], *, log: Path, cwd: Path | None = None, env: dict[str, str]
    ) -> None:
        self.args = list(args)
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            self.args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log(self) -> str:
        """Everything the child printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the child (if it still runs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the child to exit and return its status; on a time-out, kill it and fail
        with its log."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.describe()} still running after {timeout:g}s; its output:\n{self.log}"
            ) from None

    def expect_exit(self, status: int, timeout: float = 30.0) -> None:
        """Fail, showing the log, unless the child exits with `status` within `timeout`."""
        got = self.wait(timeout)
        assert got == status, f"{self.describe()} exited {got}, expected {status}:\n{self.log}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        self._log.close()

    def describe(self) -> str:
        return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(self.args))


class Children:
    """The child processes of one test: each is killed at the end, and when the test
    failed, each one's output is printed (pytest shows it under the failure)."""

    def __init__(self, tmp_path: Path, env: dict[str, str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.started: list[Child] = []

    def start(self, *args: str, cwd: Path | None = None, **env: str) -> Child:
        """Start ``args`` (a leading ``python`` means this interpreter)."""
        argv = [sys.executable if args[0] == "python" else args[0], *args[1:]]
        log = self.tmp_path / f"child-{len(self.started)}.log"
        child = Child(argv, log=log, cwd=cwd, env={**self.env, **env})
        self.started.append(child)
        return child

    def tidings(self, *args: str, cwd: Path | None = None, **env: str) -> Child:
        """Start ``tidings ARGS`` through the real entry point (``python -m tidings``)."""
        return self.start("python", "-m", "tidings", *args, cwd=cwd, **env)

    def finish(self, failed: bool) -> None:
        for child in self.started:
            child.kill()
            if failed:
                sys.stderr.write(f"--- output of {child.describe()} ---\n{child.log}\n")
            child.close()


@pytest.fixture
def children(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Children]:
    """Child processes for one test (see `Children`)."""
    kids = Children(tmp_path)
    yield kids
    report = getattr(request.node, "rep_call", None)
    kids.finish(failed=report is None or report.failed)
