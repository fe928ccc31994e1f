"""`tidings health`: "ok <url>" and 0 when the broker answers, one error line and 1 if not."""

from __future__ import annotations

import pytest

from .conftest import cli


def test_health_ok(db_url: str) -> None:
    result = cli("health", "--url", db_url)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ok {db_url}"


def test_health_reads_tidings_url_from_the_environment(db_url: str) -> None:
    result = cli("health", env={"TIDINGS_URL": db_url})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ok {db_url}"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:////nonexistent-dir/deeper/bus.db", "/nonexistent-dir/deeper/bus.db"),
        ("nosuch://host/x", "unknown bus URL scheme nosuch://"),
        ("kafka://localhost:9092", "kafka://"),
        ("not a url", "malformed bus URL"),
    ],
)
def test_health_fails_in_one_line(url: str, message: str) -> None:
    result = cli("health", "--url", url)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
