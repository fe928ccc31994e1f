from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """Poll `predicate` every 20 ms until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


class Procs:
    """Child processes started by a test; every one still running is killed at the end."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, script: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, str(APPS / script), *args],
            env={**self.env, **env},
            stderr=subprocess.PIPE,
        )
        self.started.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            if proc.stderr:
                proc.stderr.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "TIDINGS_URL": f"sqlite:///{tmp_path / 'bus.db'}",
        "OUT_DIR": str(out),
        "PYTHONUNBUFFERED": "1",
    }
    p = Procs(env)
    yield p
    p.cleanup()
