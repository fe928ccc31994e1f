"""Code blocks of README.md and docs/**/*.md, with the conventions that say how to check them.

A ```python block runs as a script in a fresh directory. A block preceded by
``<!-- fragment -->`` is only compiled (it is part of a larger example, or needs a server);
a block preceded by ``<!-- pytest -->`` is a test module, run with pytest. In ```bash
blocks, every ``tidings <command>`` named must exist (its ``--help`` exits 0), and every
command line is run (see `tests.docs.commands`).

A page can be a *walkthrough* that a person follows in terminals (Getting started): its
```python blocks titled with a file name (```` ```python title="shop.py" ````) are the
files to write, its ```bash blocks titled ``Terminal N`` the commands to type there, and its
```text blocks titled ``Terminal N`` what that terminal prints; ``<!-- stop -->`` before a
```text block means "stop the process of that terminal (Ctrl-C, SIGTERM)", and the block is
what it prints while stopping. `tests.docs.test_getting_started` follows it step by step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(
    r"(?:<!--\s*(?P<mark>[a-z]+)\s*-->\s*\n)?"
    r"```(?P<lang>[a-z]*)(?P<info>[^\n`]*)\n(?P<code>.*?)```",
    re.S,
)
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')

WALKTHROUGHS = {"docs/getting-started.md": "tests/docs/test_getting_started.py"}
"""Pages followed step by step by a test of their own."""


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, mark, title and code."""

    path: Path
    line: int
    lang: str
    mark: str | None
    code: str
    title: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def page(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def file_name(self) -> str | None:
        """The file this block is, in a walkthrough (``title="shop.py"``)."""
        if self.title and re.fullmatch(r"[\w./-]+\.\w+", self.title):
            return self.title
        return None

    @property
    def terminal(self) -> int | None:
        """The terminal this block is typed into or printed by (``title="Terminal 2"``)."""
        found = re.fullmatch(r"Terminal (\d+)", self.title or "")
        return int(found[1]) if found else None


def documents() -> list[Path]:
    """README.md and every page of the docs."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_blocks(path: Path) -> list[Block]:
    """Every fenced block of one page, in order."""
    text = path.read_text()
    found = []
    for m in _BLOCK.finditer(text):
        title = _TITLE.search(m["info"])
        line = text.count("\n", 0, m.start("code"))
        found.append(
            Block(path, line, m["lang"], m["mark"], m["code"], title["title"] if title else None)
        )
    return found


def blocks(lang: str) -> list[Block]:
    """Every block of `lang` in the documents."""
    return [b for path in documents() for b in page_blocks(path) if b.lang == lang]


def cli_commands(code: str) -> set[tuple[str, ...]]:
    """The ``tidings`` command paths named in a bash block (``("dlq", "list")``)."""
    commands = set()
    for line in code.splitlines():
        for part in re.split(r"&&|\|", line.split("#", 1)[0]):
            words = part.split()
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                words = words[1:]  # VAR=value before the command
            if not words or words[0] != "tidings":
                continue
            path = []
            for word in words[1:]:
                if not re.fullmatch(r"[a-z]+", word):
                    break
                path.append(word)
            commands.add(tuple(path[:2]))
    return commands


# -- comparing what a command printed with what a page shows -----------------------------------

_VOLATILE = [
    # ids and times differ on every run; rates and pids too
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<entry-id>"),
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"\b\d+(?:\.\d+)?/s\b"), "<rate>"),
    (re.compile(r"\bpid \d+\b"), "pid <n>"),
    # Ctrl-C is SIGINT, `kill` and systemd send SIGTERM: the same drain either way
    (re.compile(r"\bSIG(?:INT|TERM) received\b"), "<stop signal> received"),
    (re.compile(r"─+"), "─"),
]


def comparable(text: str) -> list[str]:
    """The non-empty lines of `text` with volatile parts replaced and spaces collapsed."""
    lines = []
    for raw in text.splitlines():
        line = raw
        for pattern, stand_in in _VOLATILE:
            line = pattern.sub(stand_in, line)
        line = " ".join(line.split())
        if line:
            lines.append(line)
    return lines


def find_in_order(expected: list[str], actual: list[str], start: int = 0) -> int | None:
    """Where in `actual` (from `start`) the lines of `expected` have all been seen, in
    order, each equal to a whole line; None when some are missing."""
    at = start
    for want in expected:
        while at < len(actual) and actual[at] != want:
            at += 1
        if at == len(actual):
            return None
        at += 1
    return at
