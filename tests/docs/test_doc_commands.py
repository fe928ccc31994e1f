"""Every ``tidings`` command line shown in the docs is run (see `tests.docs.commands`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer

from tests.support import Children
from tidings._cli import app

from .blocks import ROOT, WALKTHROUGHS, page_blocks
from .commands import ELSEWHERE, Line, lines, serving

LINES = lines()

_SETUP = """
import asyncio
from decimal import Decimal

from shop import OrderPlaced, bus


async def main() -> None:
    async with bus:
        await bus.publish(OrderPlaced(order_id="o-1", total=Decimal("9.90")), key="o-1")
        await bus.publish(OrderPlaced(order_id="o-2", total=Decimal("4999.00")), key="o-2")
        for _ in range(1000):
            stats = await bus.stats()
            busy = sum(s.ready + s.in_flight + s.scheduled for s in stats)
            if not busy and sum(s.dead for s in stats) == 1:
                break
            await asyncio.sleep(0.02)
        [entry] = await bus.dead_letters("inventory").list()
        print(entry.entry_id)


asyncio.run(main())
"""


def a_fresh_shell(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    return {**clean, "PYTHONUNBUFFERED": "1", **env}


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The Getting started shop after its walkthrough: the files, and ``shop.db`` with both
    groups, three events in the retained log and one dead letter in inventory (whose entry
    id is returned)."""
    base = tmp_path_factory.mktemp("shop")
    for block in page_blocks(ROOT / "docs" / "getting-started.md"):
        if block.lang == "python" and block.file_name:
            (base / block.file_name).write_text(block.code)
    done = subprocess.run(
        [sys.executable, "-c", _SETUP], cwd=base, env=a_fresh_shell(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    entry_id = done.stdout.split()[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", entry_id), done.stdout
    return base, entry_id


@pytest.fixture
def sandbox(shop: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    """A copy of the shop for one command line (a replay or a purge changes it)."""
    base, entry_id = shop
    work = tmp_path / "shop"
    shutil.copytree(base, work)
    return work, entry_id


def argv(command: list[str], entry_id: str) -> list[str]:
    """`command` as this interpreter runs it, with ENTRY_ID replaced by the real one."""
    words = [entry_id if w == "ENTRY_ID" else w for w in command]
    assert words[0] == "tidings"
    return [sys.executable, "-m", "tidings", *words[1:]]


def by_how(how: str) -> list[Line]:
    return [line for line in LINES if line.how == how]


def ids(line: Line) -> str:
    return line.text


@pytest.mark.slow
@pytest.mark.parametrize("line", by_how("run"), ids=ids)
def test_command_runs_as_shown(line: Line, sandbox: tuple[Path, str]) -> None:
    work, entry_id = sandbox
    for command in line.commands:
        done = subprocess.run(
            argv(command, entry_id), cwd=work, env=a_fresh_shell(**line.env),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=90,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"{' '.join(command)} (shown at {', '.join(line.where)}) exited "
            f"{done.returncode}:\n{done.stdout}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("line", by_how("serve"), ids=ids)
def test_long_running_command_serves_then_stops_cleanly(
    line: Line, sandbox: tuple[Path, str], children: Children
) -> None:
    work, entry_id = sandbox
    [command] = line.commands
    how = serving(command)
    assert how is not None
    children.env = a_fresh_shell(**line.env)
    child = children.start(*argv(command, entry_id), cwd=work)
    deadline = time.monotonic() + 40
    while child.log.count(how.ready) < how.times:
        assert child.proc.poll() is None, (
            f"{line.text} exited {child.proc.returncode}:\n{child.log}"
        )
        assert time.monotonic() < deadline, f"{line.text} never showed {how.ready!r}:\n{child.log}"
        time.sleep(0.05)
    child.signal(how.signal)
    child.expect_exit(0, timeout=40)


def _options(words: list[str]) -> set[str]:
    """The options of the ``tidings`` (sub)command that `words` (after ``tidings``) run."""
    command = typer.main.get_command(app)
    known = {opt for p in command.params for opt in p.opts}  # the global options
    for word in words:
        subcommands = getattr(command, "commands", {})  # typer's own click: duck-typed
        if word not in subcommands:
            break
        command = subcommands[word]
        known |= {opt for p in command.params for opt in p.opts}
    return known


@pytest.mark.parametrize("line", by_how("needs a server"), ids=ids)
def test_command_needing_a_server_uses_real_options(line: Line) -> None:
    # Running it needs RabbitMQ (or Redis); the command and its options must exist
    for command in line.commands:
        words = command[1:]
        known = _options(words)
        used = {w.split("=", 1)[0] for w in words if w.startswith("-")}
        assert used <= known, f"{line.text}: unknown option(s) {sorted(used - known)}"


@pytest.mark.parametrize("line", by_how("elsewhere"), ids=ids)
def test_command_run_elsewhere_names_a_real_test(line: Line) -> None:
    module, _, name = ELSEWHERE[line.text].partition("::")
    assert f"def {name}(" in (ROOT / module).read_text(), ELSEWHERE[line.text]


def test_every_documented_command_is_exercised() -> None:
    assert {line.how for line in LINES} <= {
        "run", "serve", "walkthrough", "elsewhere", "needs a server",
    }  # fmt: skip
    assert len(by_how("run")) >= 10 and by_how("serve") and by_how("walkthrough")
    stale = set(ELSEWHERE) - {line.text for line in LINES}
    assert not stale, f"no longer in the docs: {stale}"
    for line in by_how("walkthrough"):
        assert any(WALKTHROUGHS[page] in where for where in line.where for page in WALKTHROUGHS)
