"""What every command shares: the global options, logging, and errors in one line."""

from __future__ import annotations

import json
import re

import pytest
import typer

from tidings._cli import app
from tidings._cli.app import hoist_global_options
from tidings._cli.demo import _dlq_hint

from .conftest import cli


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("tidings ")


def test_log_format_json(db_url: str) -> None:
    result = cli("--log-format", "json", "--log-level", "info", "health", "--url", db_url)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stderr.strip().splitlines()]
    assert records, "expected log records at INFO"
    for record in records:
        assert set(record) >= {"time", "level", "logger", "message"}
    assert any(r["level"] == "INFO" and db_url in r["message"] for r in records)


def test_one_shot_commands_log_warnings_only_by_default(db_url: str) -> None:
    result = cli("health", "--url", db_url)
    assert result.exit_code == 0
    assert result.stderr == ""


def test_log_options_are_accepted_after_the_subcommand_too() -> None:
    assert hoist_global_options(["run", "app:bus", "--log-level", "debug", "--group", "g"]) == [
        "--log-level",
        "debug",
        "run",
        "app:bus",
        "--group",
        "g",
    ]
    assert hoist_global_options(["queues", "--log-format=json", "--json"]) == [
        "--log-format=json",
        "queues",
        "--json",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "nosuch://admin:s3cr3t-pw@broker.example:5672/vh",
        "amqp://admin:s3cr3t-pw@127.0.0.1:1/vh",
        "admin:s3cr3t-pw@broker.example",
    ],
)
def test_passwords_are_masked_in_errors(url: str) -> None:
    result = cli("health", "--url", url, "--timeout", "5")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "s3cr3t-pw" not in result.output


def command_paths() -> list[list[str]]:
    """Every command path of `tidings` (groups included): [], ["run"], ["dlq", "list"], ..."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return paths


def test_every_command_has_help_without_bool_placeholders() -> None:
    paths = command_paths()
    assert ["dlq", "replay"] in paths and ["queues"] in paths
    for path in paths:
        result = cli(*path, "--help", env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert "--help" in result.stdout
        assert "<bool>" not in result.stdout, f"tidings {' '.join(path)} --help:\n{result.stdout}"


def test_flags_are_shown_bare() -> None:
    result = cli("dlq", "list", "--help", env={"COLUMNS": "120"})
    line = next(x for x in result.stdout.splitlines() if "--json" in x)
    assert re.search(r"--json\s+Print JSON", line), line


def test_the_dlq_hint_of_the_demo_leaves_the_password_out() -> None:
    hint = _dlq_hint("payment", "amqp://admin:s3cr3t@rabbit.example:5672/shop", "demo1")
    assert hint == (
        "Look at them: tidings dlq list payment --url amqp://admin@rabbit.example:5672/shop "
        "--name demo1 (the password left out: add it to the URL)"
    )
    assert _dlq_hint("payment", "sqlite:///demo.db", "tidings") == (
        "Look at them: tidings dlq list payment --url sqlite:///demo.db"
    )
