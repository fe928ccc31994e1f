"""The Kafka benchmark still runs (``--quick``, on the session's private tansu broker); its
numbers are not checked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.kafka_server import TansuBroker, kafka_broker  # noqa: F401

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kafka.py"

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.mark.timeout(120)
def test_kafka_benchmark_prints_its_table(
    kafka_broker: TansuBroker,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given the session's broker; When the benchmark makes its quick run against it
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--bootstrap", kafka_broker.bootstrap],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
    )
    # Then it prints a row per contender and the ratios, and leaves no files behind
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Kafka (tansu), 300 messages of ~1 KiB, 256 in flight" in out, out
    assert "publish msg/s" in out and "consume msg/s" in out and "p99 ms" in out, out
    rows = ("tidings ", "aiokafka ", "FastStream ", "tidings / aiokafka ", "tidings / FastStream ")
    for row in rows:
        assert any(line.startswith(row) for line in out.splitlines()), (row, out)
    assert "machine: " in out
    assert list(tmp_path.iterdir()) == []
