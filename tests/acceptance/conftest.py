"""Fixtures of the acceptance tests: the applications in ``apps/`` as child processes on
one embedded-broker file (their output is shown when a test fails)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Child, Children

APPS = Path(__file__).parent / "apps"


@pytest.fixture
def children(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Children]:
    """`tests.support.children`, but showing each child's output before its log is closed.

    A stopgap: `Children.finish` reads a child's log after closing it, which raises
    ``ValueError: flush of closed file`` instead of showing the output. Delete this fixture
    once `tests.support` reads the log first.
    """
    kids = Children(tmp_path)
    yield kids
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        for child in kids.started:
            child.kill()
            sys.stderr.write(f"--- output of {child.describe()} ---\n{child.log}\n")
    kids.finish(failed=False)


class Apps:
    """Starts the scripts of ``apps/`` with ``TIDINGS_URL`` (the test's broker file) and
    ``OUT_DIR`` (where they write what they did) in their environment."""

    def __init__(self, children: Children, tmp_path: Path) -> None:
        self.children = children
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.env = {"TIDINGS_URL": f"sqlite:///{tmp_path / 'bus.db'}", "OUT_DIR": str(self.out)}

    def start(self, script: str, *args: str, **env: str) -> Child:
        """``python apps/SCRIPT ARGS``, started with `env` added to the environment."""
        return self.children.start("python", str(APPS / script), *args, **{**self.env, **env})


@pytest.fixture
def apps(children: Children, tmp_path: Path) -> Apps:
    """The test's `Apps` on a fresh broker file."""
    return Apps(children, tmp_path)
