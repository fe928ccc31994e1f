"""Every code block in README.md and docs/ runs (or compiles, or names a real command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tidings._cli import app

from .blocks import ROOT, WALKTHROUGHS, Block, blocks, cli_commands

PYTHON = blocks("python")
BASH = blocks("bash")
MARKS = {None, "fragment", "pytest"}


def test_the_docs_have_examples_and_few_fragments() -> None:
    assert len(PYTHON) >= 8
    assert {b.mark for b in PYTHON} <= MARKS
    fragments = [b for b in PYTHON if b.mark == "fragment"]
    assert len(fragments) <= len(PYTHON) // 3, [b.id for b in fragments]


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_block(block: Block, tmp_path: Path) -> None:
    if block.file_name:
        # a file of a walkthrough, written and run by the page's own test
        assert block.page in WALKTHROUGHS, f"{block.id}: a file outside a walkthrough"
        compile(block.code, block.id, "exec")
        return
    if block.mark == "fragment":
        compile(block.code, block.id, "exec")
        return
    if block.mark == "pytest":
        script = tmp_path / "test_block.py"
        script.write_text(block.code)
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
        command += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
        command += ["-W", "error", "--rootdir", str(tmp_path)]
    else:
        script = tmp_path / "block.py"
        script.write_text(block.code)
        command = [sys.executable, str(script)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"
    if block.mark == "pytest":
        summary = result.stdout.strip().splitlines()[-1]  # "69 passed in 12.87s"
        assert " passed" in summary and "failed" not in summary and "error" not in summary


def test_every_command_in_bash_blocks_exists() -> None:
    named = set().union(*(cli_commands(b.code) for b in BASH))
    assert ("demo",) in named or ("demo", "shop") in named
    runner = CliRunner()
    for path in sorted(named):
        first = runner.invoke(app, [*path[:1], "--help"])
        assert first.exit_code == 0, f"tidings {path[0]} does not exist: {first.output}"
        if "Commands" in first.output and len(path) > 1:
            second = runner.invoke(app, [*path, "--help"])
            assert second.exit_code == 0, f"tidings {' '.join(path)}: {second.output}"


def test_cli_blocks_name_real_commands_only() -> None:
    # a block naming a command that does not exist must fail the check above
    assert cli_commands("tidings dlq list g --json && tidings nosuch") == {
        ("dlq", "list"),
        ("nosuch",),
    }
    assert CliRunner().invoke(app, ["nosuch", "--help"]).exit_code != 0


def test_docs_pages_are_all_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")]
    assert pages and all(page in nav for page in pages)
