"""The benchmark scripts still run (on a tiny size); their numbers are not checked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.slow


def run(script: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_embedded_bus_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = run(
        "embedded_bus.py",
        "--events",
        "300",
        "--rounds",
        "1",
        "--rate",
        "200",
        "--rate-seconds",
        "0.5",
        cwd=tmp_path,
    )
    assert "end-to-end, publish x256 in flight" in out
    assert "raw SQLite single-row commits" in out
    assert list(tmp_path.iterdir()) == []  # its temporary files are gone


def test_embedded_transport_benchmark_prints_its_table(tmp_path: Path) -> None:
    out = run(
        "embedded_throughput.py", "--n", "300", "--rate", "200", "--seconds", "0.5", cwd=tmp_path
    )
    assert "gather window" in out and "raw SQLite" in out


def test_pipeline_benchmark_prints_its_rates(tmp_path: Path) -> None:
    out = run("pipeline.py", "--events", "600", "--rounds", "1", "--middleware", cwd=tmp_path)
    assert "one pass-through middleware" in out
    for name in ("publish_many", "publish", "consume"):
        assert name in out
