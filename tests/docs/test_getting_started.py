"""Getting started, followed as a person would: the files written from the page, a worker in
one terminal, the publisher and the CLI in another, and the output the page shows."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import Child, Children

from .blocks import ROOT, Block, comparable, find_in_order, page_blocks

PAGE = ROOT / "docs" / "getting-started.md"

pytestmark = pytest.mark.slow


def argv(command: str) -> list[str]:
    """The command line a person types, with ``tidings`` and ``python`` as installed here."""
    words = shlex.split(command, comments=True)
    if words[0] == "tidings":
        return [sys.executable, "-m", "tidings", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    raise AssertionError(f"the walkthrough types {command!r}: only tidings and python")


def commands(block: Block) -> list[str]:
    return [line for line in block.code.splitlines() if line.split("#", 1)[0].strip()]


def a_fresh_shell() -> dict[str, str]:
    """The environment of a new terminal: no TIDINGS_URL set by an earlier test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    return {**env, "PYTHONUNBUFFERED": "1"}  # what a terminal's line buffering shows at once


def wait_for_lines(child: Child, block: Block, start: int, timeout: float = 30.0) -> int:
    """Wait until `child` printed the lines of `block` (after line `start` of its output)."""
    expected = comparable(block.code)
    deadline = time.monotonic() + timeout
    while True:
        found = find_in_order(expected, comparable(child.log), start)
        if found is not None:
            return found
        if time.monotonic() > deadline or child.proc.poll() is not None:
            raise AssertionError(
                f"{block.id}: terminal {block.terminal} does not show\n{block.code}\n"
                f"it shows:\n{child.log}"
            )
        time.sleep(0.05)


def test_the_page_is_a_walkthrough_with_two_terminals() -> None:
    steps = page_blocks(PAGE)
    assert {b.file_name for b in steps if b.file_name} == {"shop.py", "place_order.py"}
    assert {b.terminal for b in steps if b.terminal} == {1, 2}
    typed = [c for b in steps if b.lang == "bash" and b.terminal for c in commands(b)]
    assert typed[0] == "tidings run shop:bus"
    assert "tidings queues --app shop:bus" in typed
    assert "tidings dlq list inventory --app shop:bus" in typed
    assert any(b.mark == "stop" for b in steps)


def test_getting_started_as_written(tmp_path: Path, children: Children) -> None:
    # Given an empty directory and a fresh shell
    work = tmp_path / "shop"
    work.mkdir()
    children.env = a_fresh_shell()
    worker: Child | None = None
    seen = 0  # how far into the worker's output the page has got
    last_output = ""

    # When each step of the page is done in order, Then each terminal shows what it shows
    for block in page_blocks(PAGE):
        if block.lang == "python" and block.file_name:
            (work / block.file_name).write_text(block.code)
        elif block.lang == "bash" and block.terminal == 1:
            [command] = commands(block)
            worker = children.start(*argv(command), cwd=work)
        elif block.lang == "bash" and block.terminal == 2:
            for command in commands(block):
                done = subprocess.run(
                    argv(command), cwd=work, env=children.env, timeout=60,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                )  # fmt: skip
                assert done.returncode == 0, (
                    f"{block.id}: {command} exited {done.returncode}:\n{done.stdout}"
                )
                last_output = done.stdout
        elif block.lang == "text" and block.terminal == 2:
            expected = comparable(block.code)
            assert find_in_order(expected, comparable(last_output)) is not None, (
                f"{block.id}: terminal 2 should show\n{block.code}\nit shows:\n{last_output}"
            )
        elif block.lang == "text" and block.terminal == 1:
            assert worker is not None, f"{block.id}: output of terminal 1 before its command"
            if block.mark == "stop":
                worker.signal(signal.SIGTERM)
                worker.expect_exit(0, timeout=40)
            seen = wait_for_lines(worker, block, seen)

    # And the worker ran until it was stopped, on shop.db, with no other broker file made
    assert worker is not None and worker.proc.returncode == 0
    assert (work / "shop.db").exists()
    assert not (work / "tidings.db").exists()
