"""The request/reply benchmark still runs (``--quick``, on the session's private RabbitMQ node
and an embedded broker file in a temporary directory); its numbers are not checked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import RabbitNode, rabbitmq_node  # noqa: F401

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "requests.py"

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.mark.timeout(120)
def test_requests_benchmark_prints_its_table(
    rabbitmq_node: RabbitNode,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given the session's node; When the benchmark makes its quick run against it
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--url", rabbitmq_node.url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
    )
    # Then it prints both load shapes and a row per contender, and leaves no files behind
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "request/reply round trip, 64 requests" in out, out
    assert "sequential (1 in flight)" in out and "concurrent (16 in flight)" in out, out
    for row in ("tidings sqlite ", "tidings RabbitMQ ", "FastStream RabbitMQ "):
        assert any(line.startswith(row) for line in out.splitlines()), out
    assert "machine: " in out
    assert list(tmp_path.iterdir()) == []
