"""The command lines of the docs' ```bash blocks, and how the docs tests exercise each.

Every line that runs ``tidings`` is one of:

- *run* (the default): executed as written, in a copy of a sandbox that holds the Getting
  started shop (``shop.py``, ``place_order.py`` and ``shop.db`` with both groups declared, a
  few events in the retained log and one dead letter in ``inventory``); ``ENTRY_ID`` stands
  for that dead letter's id. It must exit 0.
- *serve*: a command that runs until stopped (``tidings run``, ``--watch``): started the
  same way, stopped with the signal a person or a service manager sends once it is up, and
  it must exit 0.
- *walkthrough*: typed in a terminal of a page that a test follows step by step
  (`tests.docs.blocks.WALKTHROUGHS`).
- *elsewhere*: too slow to run here, and run by the named test (`ELSEWHERE`).
- *needs a server*: a URL of RabbitMQ (or Redis) in the line; only the command and every
  option it uses are checked against ``tidings ... --help``.

Lines that do not run ``tidings`` (``pip install``, ``bash scripts/...``, server
installation) are not the docs tests' business.
"""

from __future__ import annotations

import re
import shlex
import signal
from dataclasses import dataclass, field

from .blocks import WALKTHROUGHS, Block, blocks

_OUTBOX_DOCS = "tests/cli/test_outbox_docs.py::test_the_outbox_commands_of_the_docs_run"

ELSEWHERE = {
    # about 10 s on a laptop; the same scenario, scaled down, is run by this test
    "tidings demo signup": "tests/cli/test_demo.py::test_demo_signup",
    # an application with a database (the outbox guide's), which the sandbox has not
    "tidings outbox relay billing:bus": _OUTBOX_DOCS,
    "tidings outbox list --app billing:bus": _OUTBOX_DOCS,
    "tidings outbox list --app billing:bus --dead --json": _OUTBOX_DOCS,
    "tidings outbox retry --app billing:bus --id 3f9c2a81d4e0": _OUTBOX_DOCS,
    "tidings outbox purge --app billing:bus --all --yes": _OUTBOX_DOCS,
    "tidings queues --app billing:bus": _OUTBOX_DOCS,
}
"""Command lines run by another test, and the test."""

_SERVER_URL = re.compile(r"\b(?:amqps?|redis|rediss|kafka)://")


@dataclass(frozen=True)
class Serving:
    """How to tell a long-running command is up, and how to stop it."""

    ready: str
    times: int
    signal: int


@dataclass
class Line:
    """One command line of a bash block: one or more commands joined by ``&&``."""

    text: str
    commands: list[list[str]]
    env: dict[str, str] = field(default_factory=dict)
    where: list[str] = field(default_factory=list)

    @property
    def how(self) -> str:
        """``run``, ``serve``, ``walkthrough``, ``elsewhere`` or ``needs a server``."""
        if any(w.startswith("walkthrough") for w in self.where):
            return "walkthrough"
        if self.text in ELSEWHERE:
            return "elsewhere"
        if _SERVER_URL.search(self.text) or any(_SERVER_URL.search(v) for v in self.env.values()):
            return "needs a server"
        if any(serving(c) for c in self.commands):
            return "serve"
        return "run"


def serving(command: list[str]) -> Serving | None:
    """How a long-running ``tidings`` command is stopped, or None for one that ends."""
    if command[:2] == ["tidings", "run"]:
        processes = 1
        for flag in ("--processes", "-p"):
            if flag in command:
                processes = int(command[command.index(flag) + 1])
        return Serving("worker started", processes, signal.SIGTERM)
    if command[:2] == ["tidings", "queues"] and {"--watch", "-w"} & set(command):
        return Serving("inventory", 1, signal.SIGINT)  # Ctrl-C
    return None


def lines() -> list[Line]:
    """Every distinct line of the docs' bash blocks that runs ``tidings``, with the places
    it is shown (``page:line``)."""
    found: dict[str, Line] = {}
    for block in blocks("bash"):
        exported: dict[str, str] = {}
        for words in _logical(block):
            if words[0] == "export":
                exported.update(_assignments(words[1:]))
                continue
            env: dict[str, str] = {}
            commands = []
            for command in _and_list(words):
                env.update(_assignments(command))
                commands.append(command)
            tidings = [c for c in commands if c and c[0] == "tidings"]
            if not tidings:
                continue
            key = " && ".join(shlex.join(c) for c in tidings)
            where = block.id
            if block.page in WALKTHROUGHS and block.terminal:
                where = f"walkthrough {WALKTHROUGHS[block.page]} ({block.id})"
            line = found.setdefault(key, Line(key, tidings, {**exported, **env}))
            line.where.append(where)
    return list(found.values())


def _logical(block: Block) -> list[list[str]]:
    """The words of each command line of `block`: comments dropped, continued lines joined."""
    found = []
    carry = ""
    for raw in block.code.splitlines():
        text = carry + raw
        if text.rstrip().endswith("\\"):
            carry = text.rstrip()[:-1] + " "
            continue
        carry = ""
        words = shlex.split(text, comments=True)
        if words:
            found.append(words)
    return found


def _and_list(words: list[str]) -> list[list[str]]:
    """``a && b`` as ``[a, b]``."""
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def _assignments(command: list[str]) -> dict[str, str]:
    """Take the leading ``NAME=value`` words off `command`; return them."""
    env = {}
    while command and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", command[0]):
        name, _, value = command.pop(0).partition("=")
        env[name] = value
    return env
