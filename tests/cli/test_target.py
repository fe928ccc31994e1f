"""Pointing `tidings run` at an application: a dotted module or a file path, imported from
the file's own directory; every bad target is one line, never a traceback."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest

from tests.support import Children, wait_for

from .conftest import cli, stop

# A service in a directory of its own, importing a sibling module (as it would when run
# as a script), on the broker TIDINGS_URL names.
SERVICE = textwrap.dedent(
    """
    import os
    from pathlib import Path

    from greeting import greet   # a sibling module: the file's directory is on sys.path
    from tidings import Bus

    bus = Bus()


    @bus.subscribe("svc.hello", group="greeter")
    async def hello(event: dict) -> None:
        Path(os.environ["TIDINGS_TEST_OUT"], "greeted").write_text(greet(event["who"]))
    """
)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A directory holding ``worker.py`` and its sibling ``greeting.py``."""
    directory = tmp_path / "svc"
    directory.mkdir()
    (directory / "worker.py").write_text(SERVICE)
    (directory / "greeting.py").write_text("def greet(who):\n    return f'hello {who}'\n")
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("form", ["absolute:bus", "relative"])
def test_run_takes_a_file_path(
    children: Children, tmp_path: Path, service: Path, db_url: str, form: str
) -> None:
    # Given a service file in its own directory, and a shell somewhere else
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = f"{service / 'worker.py'}:bus" if form == "absolute:bus" else "../svc/worker.py"
    out = tmp_path / "out"
    out.mkdir()

    # When `tidings run` is given the file's path
    worker = children.tidings(
        "run", target, cwd=elsewhere, TIDINGS_URL=db_url, TIDINGS_TEST_OUT=str(out)
    )

    # Then it runs the file's bus, whose handler imports its sibling module
    wait_for(lambda: "worker started" in worker.log or worker.proc.poll() is not None)
    assert "worker started" in worker.log, worker.log
    published = cli("publish", "svc.hello", "-d", '{"who": "ada"}', "--url", db_url)
    assert published.exit_code == 0, published.output
    greeted = out / "greeted"
    wait_for(lambda: greeted.exists() and greeted.read_text(), what="the handler to run")
    assert greeted.read_text() == "hello ada"
    stop(worker)


def _module(tmp_path: Path, code: str) -> Path:
    """A module file with a name of its own (modules stay imported in this process)."""
    path = tmp_path / f"app_{uuid.uuid4().hex[:12]}.py"
    path.write_text(textwrap.dedent(code))
    return path


@pytest.mark.parametrize(
    ("code", "attribute", "message"),
    [
        ("x = 1 / 0\n", "", "ZeroDivisionError: division by zero ({file}, line 1)"),
        ("def f(:\n", "", "SyntaxError: invalid syntax ({file}, line 1)"),
        ("import no_such_dependency\n", "", "No module named 'no_such_dependency'"),
        ("from tidings import Bus\nbus = Bus()\n", ":nope", "{file} has no attribute 'nope'"),
        ("bus = 3\n", "", "{file}:bus is a int, not a tidings.Bus"),
    ],
)
def test_a_bad_file_target_is_one_line(
    tmp_path: Path, code: str, attribute: str, message: str
) -> None:
    path = _module(tmp_path, code)
    result = cli("run", f"{path}{attribute}")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message.format(file=path) in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{tmp}/missing/worker.py:bus", "cannot import {tmp}/missing/worker.py: no such file"),
        ("bad name:bus", "'bad name' is neither a dotted module name nor a path"),
        (":bus", "bad target ':bus'"),
    ],
)
def test_a_target_that_names_nothing_is_one_line(tmp_path: Path, target: str, message: str) -> None:
    result = cli("run", target.format(tmp=tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert message.format(tmp=tmp_path) in result.stderr
