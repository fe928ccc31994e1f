"""The RabbitMQ throughput benchmark still runs (tiny size, the session's private node); its
numbers are not checked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import RabbitNode, rabbitmq_node  # noqa: F401

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "rabbitmq_throughput.py"

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.mark.timeout(240)
def test_rabbitmq_benchmark_prints_its_table(
    rabbitmq_node: RabbitNode,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given the session's node; When the benchmark runs on a tiny size against it
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--url",
            rabbitmq_node.url,
            "--messages",
            "300",
            "--rounds",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=200,
    )
    # Then it prints a row per contender and the ratios
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "RabbitMQ throughput, 300 messages" in out
    for row in ("tidings ", "aio-pika ", "FastStream "):
        assert any(line.startswith(row) for line in out.splitlines()), out
    assert "tidings/aio-pika" in out and "tidings/FastStream" in out
