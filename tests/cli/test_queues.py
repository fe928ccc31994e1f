"""`tidings queues`: every group's counters as a table or JSON, once or refreshed."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import textwrap
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from tests.servers import RabbitNode, delete_namespace, rabbitmq_node  # noqa: F401
from tests.support import Children, wait_for
from tidings import GroupStats
from tidings._cli.queues import queues_table

from .conftest import cli, declare


def test_queues_table_and_json(db_url: str) -> None:
    # Given two groups, one with a waiting event
    long_name = "a-group-with-a-very-long-name-" + "x" * 150
    declare(db_url, "alpha", long_name)
    assert cli("publish", "test.one", "--url", db_url).exit_code == 0

    # When the queues are listed as a table (not on a terminal)
    table = cli("queues", "--url", db_url)

    # Then every column is there, nothing is cut, and the alert for no consumers shows
    assert table.exit_code == 0, table.output
    for header in ("group", "ready", "in flight", "scheduled", "dead", "consumers", "alerts"):
        assert header in table.stdout
    assert long_name in table.stdout
    assert "…" not in table.stdout
    alpha = next(line for line in table.stdout.splitlines() if line.strip().startswith("alpha"))
    assert "no consumers while 1 messages wait" in alpha

    # And as JSON, one object per group with the GroupStats fields
    rows = json.loads(cli("queues", "--json", "--url", db_url).stdout)
    by_group = {r["group"]: r for r in rows}
    assert set(by_group) >= {"alpha", long_name}
    assert by_group["alpha"]["ready"] == 1
    assert by_group["alpha"]["consumers"] == 0
    assert set(by_group["alpha"]) >= {
        "in_flight", "scheduled", "dead", "oldest_age", "publish_rate", "ack_rate", "alerts",
    }  # fmt: skip
    assert by_group["alpha"]["alerts"] == ["no consumers while 1 messages wait"]


def test_queues_on_an_empty_broker(db_url: str) -> None:
    result = cli("queues", "--url", db_url)
    assert result.exit_code == 0
    assert "no groups" in result.stdout
    assert json.loads(cli("queues", "--json", "--url", db_url).stdout) == []


def test_queues_watch_refreshes_until_ctrl_c(db_url: str, children: Children) -> None:
    # Given a group, and `queues --watch` running
    declare(db_url, "alpha")
    watch = children.tidings("queues", "--watch", "--json", "--interval", "0.1", "--url", db_url)

    # When it has refreshed a few times, with an event published in between
    wait_for(lambda: len(watch.log.splitlines()) >= 2, what="two refreshes")
    assert cli("publish", "test.one", "--url", db_url).exit_code == 0
    wait_for(
        lambda: any(json.loads(x)[0]["ready"] == 1 for x in watch.log.splitlines()),
        what="a refresh showing the event",
    )

    # Then Ctrl-C ends it quietly with status 0
    watch.signal(signal.SIGINT)
    watch.expect_exit(0, 20)
    assert "Traceback" not in watch.log


def test_group_names_are_whole_on_a_100_column_terminal() -> None:
    # Given groups named as handlers are by default (module.function), with alerts
    names = ["inventory", "tidings.examples.shop.inventory.reserve"]
    stats = [
        GroupStats(group=name, ready=1200, in_flight=3, scheduled=0, dead=2, consumers=0,
                   oldest_age=62.0, publish_rate=10.0, ack_rate=9.5,
                   alerts=["no consumers while 1200 messages wait"])
        for name in names
    ]  # fmt: skip

    # When the table is printed on a terminal 100 columns wide
    console = Console(width=100, force_terminal=True, color_system=None, record=True)
    console.print(queues_table(stats))
    screen = console.export_text()

    # Then each group name is whole on one line, and no cell is cut short
    for name in names:
        assert any(name in line for line in screen.splitlines()), screen
    assert "…" not in screen


@pytest.mark.rabbitmq
def test_inspecting_a_rabbitmq_app_leaves_its_database_alone(
    tmp_path: Path,
    rabbitmq_node: RabbitNode,  # noqa: F811
) -> None:
    # Given an app on RabbitMQ whose database has no tidings tables yet (its bus is opened
    # publish-only to read the groups' counters)
    name = f"q{uuid.uuid4().hex[:10]}"
    database = tmp_path / "app.db"
    sqlite3.connect(database).close()
    path = tmp_path / f"shop_{uuid.uuid4().hex[:12]}.py"
    path.write_text(
        textwrap.dedent(
            f"""
            from tidings import Bus

            bus = Bus({rabbitmq_node.url!r}, name={name!r},
                      management_url={rabbitmq_node.management_url!r},
                      database="sqlite+aiosqlite:///{database}")


            @bus.subscribe("shop.#", group="orders", transactional=True)
            async def handle(event: dict) -> None:
                raise AssertionError("an inspecting command must not start the app")
            """
        )
    )
    try:
        # When its queues and its dead letters are listed
        table = cli("queues", "--app", f"{path}:bus")
        dead = cli("dlq", "list", "orders", "--app", f"{path}:bus")
        assert dead.exit_code == 0, dead.output
        # Then the groups are there, the outbox line says why it cannot be read, and the
        # command neither created the tables nor ran a relay
        assert table.exit_code == 0, table.output
        assert "orders" in table.stdout
        assert "outbox: cannot be read" in table.stdout and "tidings_outbox" in table.stdout
        with sqlite3.connect(database) as conn:
            assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    finally:
        asyncio.run(delete_namespace(rabbitmq_node, name))
