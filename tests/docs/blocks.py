"""Code blocks of README.md and docs/**/*.md, with the conventions that say how to check them.

A ```python block runs as a script in a fresh directory. A block preceded by
``<!-- fragment -->`` is only compiled (it is part of a larger example, or needs a server);
a block preceded by ``<!-- pytest -->`` is a test module, run with pytest. In ```bash
blocks, every ``tidings <command>`` named must exist (its ``--help`` exits 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(
    r"(?:<!--\s*(?P<mark>[a-z]+)\s*-->\s*\n)?```(?P<lang>[a-z]*)\n(?P<code>.*?)```", re.S
)


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its mark and its code."""

    path: Path
    line: int
    lang: str
    mark: str | None
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    """README.md and every page of the docs."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(lang: str) -> list[Block]:
    """Every block of `lang` in the documents."""
    found = []
    for path in documents():
        text = path.read_text()
        for m in _BLOCK.finditer(text):
            if m["lang"] == lang:
                line = text.count("\n", 0, m.start("code"))
                found.append(Block(path, line, lang, m["mark"], m["code"]))
    return found


def cli_commands(code: str) -> set[tuple[str, ...]]:
    """The ``tidings`` command paths named in a bash block (``("dlq", "list")``)."""
    commands = set()
    for line in code.splitlines():
        for part in re.split(r"&&|\|", line.split("#", 1)[0]):
            words = part.split()
            if not words or words[0] != "tidings":
                continue
            path = []
            for word in words[1:]:
                if not re.fullmatch(r"[a-z]+", word):
                    break
                path.append(word)
            commands.add(tuple(path[:2]))
    return commands
