"""Several processes opening one brand-new broker file at the same moment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import tidings

SRC = str(Path(tidings.__file__).resolve().parent.parent)

# Each child imports everything once, then for every "PATH" line on stdin opens that file,
# declares a group and publishes, and answers "ok" or the error on one line. The parent sends
# the line to all children at once, so the racing part is as short as it can make it.
_CHILD = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from tidings.transports import GroupSpec, OutgoingMessage
    from tidings.transports.sqlite import create_transport

    async def first_open(path: str) -> None:
        transport = create_transport(f"sqlite:///{path}", {})
        await transport.open()
        try:
            await transport.declare([GroupSpec("g" + sys.argv[1], ("x.*",))])
            message = OutgoingMessage(type="x.y", body=b"{}", id=uuid.uuid4().hex)
            assert await transport.publish([message]) == [True]
        finally:
            await transport.close()

    for line in sys.stdin:
        try:
            asyncio.run(first_open(line.strip()))
            print("ok", flush=True)
        except Exception as exc:
            print(f"{type(exc).__name__}: {exc}".replace("\\n", " "), flush=True)
    """
)

PROCESSES = 6
ROUNDS = 15


@pytest.fixture
def racers() -> Iterator[list[subprocess.Popen[str]]]:
    env = {**os.environ, "PYTHONPATH": SRC}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(i)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    yield children
    for child in children:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()


def _race(children: list[subprocess.Popen[str]], path: Path) -> list[str]:
    """Have every child open `path` at once; return what each answered."""
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{path}\n")
        child.stdin.flush()
    answers = []
    for child in children:
        assert child.stdout is not None
        answers.append(child.stdout.readline().strip())
    return answers


def test_processes_opening_a_new_file_at_once_all_succeed(
    racers: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    for round_ in range(ROUNDS):
        # Given a broker file that does not exist yet
        path = tmp_path / f"bus{round_}.db"

        # When every process opens it, declares a group and publishes at the same moment
        answers = _race(racers, path)

        # Then every one of them succeeded
        assert answers == ["ok"] * PROCESSES, f"round {round_}: {answers}"
