"""``tidings sagas list|show``: a saga's instances as the application's database holds them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.sagas.app import Added, Close, Tally, TallyOpened
from tidings import Bus
from tidings.testing import TestBus

from .conftest import cli

APP = """
from tidings import Bus
from tests.sagas.app import Tally

bus = Bus("memory://sagas-cli", name="shop", database="sqlite+aiosqlite:///{db}")
bus.add_saga(Tally)
"""


@pytest.fixture
async def app(tmp_path: Path) -> str:
    """An application whose database holds three tallies: one closed, two open."""
    db = tmp_path / "app.db"
    module = tmp_path / f"sagas_{uuid.uuid4().hex[:8]}.py"  # a module name of its own
    module.write_text(APP.format(db=db))
    bus = Bus(
        "memory://", name="shop", database=f"sqlite+aiosqlite:///{db}", on_unroutable="ignore"
    )
    bus.add_saga(Tally)
    async with TestBus(bus) as tb:
        await bus.publish_many([TallyOpened(tally=t) for t in ("t-1", "t-2", "t-3")])
        await tb.drain()
        await bus.publish(Added(tally="t-2", n=4))
        await bus.send(Close(tally="t-1"), to="tally")
        await tb.drain()
    return f"{module}:bus"


def test_list_shows_every_instance_and_filters_by_status(app: str) -> None:
    listed = cli("sagas", "list", "tally", "--app", app)
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[2:] if line}
    assert rows == {"t-1": "closed", "t-2": "open", "t-3": "open"}

    closed = cli("sagas", "list", "tally", "--status", "closed", "--app", app, "--json")
    assert closed.exit_code == 0, closed.output
    [only] = json.loads(closed.stdout)
    assert only["key"] == "t-1" and only["status"] == "closed" and only["completed_at"]

    none = cli("sagas", "list", "tally", "--status", "lost", "--app", app)
    assert none.exit_code == 0 and "no tally instances with status 'lost'" in none.stdout


def test_show_prints_state_timeouts_and_history(app: str) -> None:
    shown = cli("sagas", "show", "tally", "t-2", "--app", app)
    assert shown.exit_code == 0, shown.output
    assert "tally t-2: open (version 2" in shown.stdout
    assert '"total": 4' in shown.stdout
    assert "tally.remind" in shown.stdout  # the pending reminder
    assert "tally.opened" in shown.stdout and "tally.added" in shown.stdout

    data = json.loads(cli("sagas", "show", "tally", "t-2", "--app", app, "--json").stdout)
    assert data["state"]["total"] == 4 and data["state"]["seen"] == [4]
    assert [t["type"] for t in data["timeouts"]] == ["tally.remind"]
    assert [h["event"] for h in data["history"]] == ["tally.opened", "tally.added"]
    assert data["history"][1]["from"] == "open" and data["completed_at"] is None


def test_the_database_can_be_named_directly(app: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    shown = cli("sagas", "show", "tally", "t-1", "--database", url, "--name", "shop", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["status"] == "closed"
    # under another bus name there is nothing
    other = cli("sagas", "show", "tally", "t-1", "--database", url)
    assert other.exit_code == 1 and "no tally instance with key 't-1'" in other.output


def test_errors_are_one_line(app: str, tmp_path: Path) -> None:
    missing = cli(
        "sagas", "list", "tally", "--database", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    )
    assert missing.exit_code == 1 and "no database file" in missing.output
    assert not (tmp_path / "x.db").exists()
    nowhere = cli("sagas", "list", "tally")
    assert nowhere.exit_code == 1 and "--app MODULE:bus" in nowhere.output
    (tmp_path / "plain.py").write_text("from tidings import Bus\nbus = Bus('memory://')\n")
    plain = cli("sagas", "list", "tally", "--app", f"{tmp_path / 'plain.py'}:bus")
    assert plain.exit_code == 1 and "has no database" in plain.output
    assert "Traceback" not in missing.output + nowhere.output + plain.output
