"""Fixtures of the acceptance tests: the applications in ``apps/`` as child processes on
one embedded-broker file (their output is shown when a test fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Child, Children

APPS = Path(__file__).parent / "apps"


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
