"""Which broker an inspecting command looks at: ``--url``, then the ``--app`` bus's URL (and
name), then ``TIDINGS_URL``, then ``sqlite:///tidings.db``; never a broker file it creates."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.servers import (  # noqa: F401 - session fixtures
    RabbitNode,
    bare_rabbitmq_node,
    delete_namespace,
    rabbitmq_node,
)

from .conftest import cli, create_broker, declare


def app_file(tmp_path: Path, url: str, name: str = "tidings") -> str:
    """An application file whose bus is on `url` under `name`; its ``--app`` target. Its
    handler would fail a test if the app were started; its module name is its own (modules
    stay imported in this process)."""
    path = tmp_path / f"shop_{uuid.uuid4().hex[:12]}.py"
    code = f"""
        from tidings import Bus

        bus = Bus({url!r}, name={name!r})


        @bus.subscribe("shop.#", group="orders")
        async def handle(event: dict) -> None:
            raise AssertionError("an inspecting command must not start the app")
        """
    path.write_text(textwrap.dedent(code))
    return f"{path}:bus"


def health(*args: str, env: dict[str, str] | None = None) -> str:
    """The URL `tidings health ARGS` says is ok."""
    result = cli("health", *args, env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok ")
    return result.stdout.strip()[3:]


def test_the_app_url_beats_tidings_url_and_url_beats_both(tmp_path: Path) -> None:
    # Given an app on shop.db, and TIDINGS_URL naming another broker
    shop = create_broker(f"sqlite:///{tmp_path / 'shop.db'}")
    other = create_broker(f"sqlite:///{tmp_path / 'other.db'}")
    app = app_file(tmp_path, shop)

    # Then --app points at the app's broker, and --url beats both
    assert health("--app", app, env={"TIDINGS_URL": other}) == shop
    assert health("--app", app, "--url", other, env={"TIDINGS_URL": shop}) == other


def test_tidings_url_then_the_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a directory with the default broker file, and another broker
    monkeypatch.chdir(tmp_path)
    create_broker("sqlite:///tidings.db")
    other = create_broker(f"sqlite:///{tmp_path / 'other.db'}")

    # Then TIDINGS_URL is used when set, else the default file
    assert health(env={"TIDINGS_URL": other}) == other
    assert health(env={"TIDINGS_URL": ""}) == "sqlite:///tidings.db"


def test_commands_with_app_use_the_app_broker(tmp_path: Path) -> None:
    # Given the app's group on its broker, and TIDINGS_URL naming another broker
    shop = create_broker(f"sqlite:///{tmp_path / 'shop.db'}")
    other = create_broker(f"sqlite:///{tmp_path / 'other.db'}")
    declare(shop, "orders", pattern="shop.#")
    app = app_file(tmp_path, shop)

    # When an event is published with --app, and the queues are listed with --app
    published = cli("publish", "shop.placed", "--app", app, env={"TIDINGS_URL": other})
    listed = cli("queues", "--json", "--app", app, env={"TIDINGS_URL": other})

    # Then both used the app's broker (and the app was not started: its handler never ran)
    assert published.exit_code == 0, published.output
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(g["group"], g["ready"], g["consumers"]) for g in rows] == [("orders", 1, 0)]


INSPECTING = [
    ["queues"],
    ["health"],
    ["publish", "test.one"],
    ["replay", "g", "--since", "1h"],
    ["dlq", "list", "g"],
    ["dlq", "show", "g", "abcdef"],
    ["dlq", "replay", "g", "--all"],
    ["dlq", "purge", "g", "--all", "--yes"],
]


@pytest.mark.parametrize("command", INSPECTING, ids=" ".join)
def test_an_inspecting_command_never_creates_a_broker_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # Given a directory without a broker file, and an app whose file does not exist either
    monkeypatch.chdir(tmp_path)
    app = app_file(tmp_path, f"sqlite:///{tmp_path / 'shop.db'}")

    for args, missing in [
        ([], tmp_path / "tidings.db"),
        (["--url", f"sqlite:///{tmp_path / 'given.db'}"], tmp_path / "given.db"),
        (["--app", app], tmp_path / "shop.db"),
    ]:
        # When the command runs against it
        result = cli(*command, *args, env={"TIDINGS_URL": ""})

        # Then it fails in one line naming the file and how to point at one, creating none
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"error: no broker file at {missing} ")
        assert "--url sqlite:///path.db or --app module:bus" in lines[0]
        assert not missing.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == []


def test_a_bad_app_is_one_line(tmp_path: Path) -> None:
    result = cli("queues", "--app", f"{tmp_path / 'nope.py'}:bus")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: cannot import {tmp_path / 'nope.py'}: no such file"


def test_management_url_is_for_rabbitmq_only(db_url: str) -> None:
    result = cli("queues", "--url", db_url, "--management-url", "http://u:s3cr3t@host:15672")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: --management-url is for RabbitMQ (amqp:// or amqps://")
    assert "s3cr3t" not in result.stderr


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_app_name_and_management_url_reach_the_rabbitmq_bus(
    tmp_path: Path,
    rabbitmq_node: RabbitNode,  # noqa: F811
) -> None:
    # Given an app's bus with a name of its own on the private node, whose management API
    # is not on the port the AMQP URL implies
    name = f"cli{uuid.uuid4().hex[:10]}"
    app = app_file(tmp_path, rabbitmq_node.url, name=name)
    management = ["--management-url", rabbitmq_node.management_url]
    try:
        declare(rabbitmq_node.url, "orders", pattern="shop.#", name=name)

        # When the queues are listed with --app, and with --app and another --name
        with_app = cli("queues", "--json", "--app", app, *management)
        renamed = cli("queues", "--json", "--app", app, "--name", f"{name}x", *management)

        # Then the first shows the app bus's group, the second none
        assert with_app.exit_code == 0, with_app.output
        assert [g["group"] for g in json.loads(with_app.stdout)] == ["orders"]
        assert renamed.exit_code == 0, renamed.output
        assert json.loads(renamed.stdout) == []
    finally:
        asyncio.run(delete_namespace(rabbitmq_node, name))


def test_the_app_transport_options_go_with_its_url_only(tmp_path: Path) -> None:
    from tidings._cli.connection import choose_broker

    # Given an app whose bus has a transport option of its own
    shop = create_broker(f"sqlite:///{tmp_path / 'shop.db'}")
    other = create_broker(f"sqlite:///{tmp_path / 'other.db'}")
    path = tmp_path / f"tuned_{uuid.uuid4().hex[:12]}.py"
    path.write_text(f"from tidings import Bus\n\nbus = Bus({shop!r}, busy_timeout=3.0)\n")

    # Then its options are used with its URL, and not with another URL given by --url
    with_app = choose_broker(app=f"{path}:bus", url=None, name=None)
    assert (with_app.url, dict(with_app.options)) == (shop, {"busy_timeout": 3.0})
    elsewhere = choose_broker(app=f"{path}:bus", url=other, name=None)
    assert (elsewhere.url, dict(elsewhere.options)) == (other, {})
    assert health("--app", f"{path}:bus") == shop


def test_queues_with_app_on_rabbitmq_without_the_management_api_shows_its_groups(
    tmp_path: Path,
    bare_rabbitmq_node: RabbitNode,  # noqa: F811
) -> None:
    # Given an app on a stock RabbitMQ (no management API) with a message waiting in its group
    # (a fresh namespace on the session's private node, left there: without the management
    # API there is no listing to clean up by)
    name = f"cli{uuid.uuid4().hex[:10]}"
    app = app_file(tmp_path, bare_rabbitmq_node.url, name=name)
    declare(bare_rabbitmq_node.url, "orders", pattern="shop.#", name=name)
    published = cli("publish", "shop.placed", "--app", app)
    assert published.exit_code == 0, published.output

    # When the queues are listed with --app (a process of its own, as a user runs it)
    command = [sys.executable, "-m", "tidings", "queues", "--json", "--app", app]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)

    # Then the app's group is shown from AMQP counters, with the warning saying why
    assert result.returncode == 0, result.stderr
    rows = {g["group"]: g for g in json.loads(result.stdout)}
    assert rows["orders"]["ready"] == 1
    assert "management API" in result.stderr
