"""`tidings demo`: the README's main command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import cli


def check_summary(summary: dict[str, object], events: int) -> None:
    groups = summary["groups"]
    assert isinstance(groups, dict)
    billing, shipping = groups["billing"], groups["shipping"]
    # every order was charged or dead-lettered; every charged order was shipped
    assert billing["delivered"] == events
    assert billing["handled"] + billing["dead_lettered"] == events
    assert shipping["delivered"] == billing["handled"]
    assert shipping["handled"] + shipping["dead_lettered"] == shipping["delivered"]
    # the simulated failures happened: retries that succeeded, and declined cards
    assert billing["retried"] > 0
    assert billing["dead_lettered"] > 0
    assert summary["handled"] == billing["handled"] + shipping["handled"]
    assert summary["dead_lettered"] == billing["dead_lettered"] + shipping["dead_lettered"]
    assert summary["retried"] == billing["retried"] + shipping["retried"]
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]


@pytest.mark.slow
def test_demo_runs_on_a_fresh_machine(tmp_path: Path) -> None:
    # Given nothing but the installed package (a temporary broker file by default)
    def demo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tidings", "demo", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=100,
        )  # fmt: skip

    # When the demo runs, twice
    first = demo("--events", "30", "--json")
    second = demo("--events", "30")

    # Then both exit 0 with a summary whose counts add up, and leave no file behind
    assert first.returncode == 0, first.stderr
    check_summary(json.loads(first.stdout), 30)
    assert second.returncode == 0, second.stderr
    assert "handled" in second.stdout and "dead-lettered" in second.stdout
    assert "p50" in second.stdout
    assert list(tmp_path.iterdir()) == []


def test_demo_keeps_its_broker_when_given_a_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = cli("demo", "--events", "20", "--json", "--url", url)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    check_summary(summary, 20)

    # the declined cards are in billing's dead-letter queue, with their reason
    entries = json.loads(cli("dlq", "list", "billing", "--json", "--url", url).stdout)
    assert len(entries) == summary["groups"]["billing"]["dead_lettered"]
    assert all("declined" in e["reason"] for e in entries)


def test_demo_on_the_memory_transport() -> None:
    result = cli("demo", "--events", "10", "--url", "memory://demo-test")
    assert result.exit_code == 0, result.output
    assert "10 orders through billing and shipping" in result.stdout
