"""What every command shares: the global options, logging, and errors in one line."""

from __future__ import annotations

import json

import pytest

from tidings._cli.app import hoist_global_options

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
