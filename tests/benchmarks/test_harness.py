"""The benchmark harness (``python -m benchmarks``) runs every scenario on a tiny size and
writes its report: markdown tables, PNG charts and the raw results as JSON. The numbers are
not checked here; benchmarks are not timed tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers import RabbitNode, rabbitmq_node  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def harness(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def results_of(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "benchmarks" / "results.json").read_text())
    return data


def assert_charts(out: Path, *names: str) -> None:
    markdown = (out / "benchmarks.md").read_text()
    for name in names:
        png = out / "benchmarks" / name
        assert png.read_bytes()[:8] == PNG, name
        assert f"](benchmarks/{name})" in markdown, name


@pytest.fixture(scope="module")
def rabbitmq_report(
    rabbitmq_node: RabbitNode,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """One tiny run of the scenarios that use RabbitMQ, on the session's node."""
    out = tmp_path_factory.mktemp("bench")
    scratch = tmp_path_factory.mktemp("scratch")
    harness(
        "--only",
        "rabbitmq,scaling,memory",
        "--rabbitmq-url",
        rabbitmq_node.url,
        "--out",
        str(out),
        "--scratch",
        str(scratch),
    )
    assert list(scratch.iterdir()) == []  # the embedded broker files are gone
    return out


def test_embedded_scenario_runs_without_rabbitmq(tmp_path: Path) -> None:
    # Given no RabbitMQ; When only the embedded scenario runs
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    printed = harness(
        "--only", "embedded", "--no-rabbitmq", "--out", str(out), "--scratch", str(scratch)
    )
    # Then the report has its tables, targets and charts, and nothing else
    markdown = (out / "benchmarks.md").read_text()
    assert "## Embedded broker against raw SQLite" in markdown
    assert "## RabbitMQ" not in markdown and "## Scaling" not in markdown
    for row in (
        "| tidings, 256 publishes in flight ",
        "| tidings, publish_many of 256 ",
        "| tidings transport alone, 256 in flight ",
        "| raw SQLite, 1 row per commit ",
        "| raw SQLite, 256 rows per commit ",
        "| tidings, publish to handler ",
        "| raw SQLite, group commit ",
        "| raw SQLite cycle, 256 rows per commit ",
        "| huey on SQLite, 1 task per commit ",
        "| tidings / raw SQLite cycle ",
        "| tidings / huey on SQLite ",
        "| idle worker RSS (VmRSS) ",
    ):
        assert row in markdown, row
    assert "| embedded end to end, durable (publish_many of 256) | >= 10,000 events/s |" in (
        " ".join(markdown.split())
    )
    assert "## Machine" in markdown and "| SQLite " in markdown
    assert_charts(out, "embedded-throughput.png", "embedded-latency.png", "embedded-ratios.png")
    data = results_of(out)
    assert set(data["scenarios"]) == {"embedded"}
    embedded = data["scenarios"]["embedded"]
    assert len(embedded["throughput"]["tidings, publish_many of 256"]) == 1  # one round
    assert set(embedded["latency"]["tidings, publish to handler"]) == {"p50", "p95", "p99", "max"}
    assert data["machine"]["RabbitMQ"] == "not used in this run"
    assert "embedded end to end" in printed  # the targets are printed too
    assert list(scratch.iterdir()) == []


@pytest.mark.rabbitmq
def test_rabbitmq_scenario_compares_four_contenders(rabbitmq_report: Path) -> None:
    markdown = (rabbitmq_report / "benchmarks.md").read_text()
    assert "## RabbitMQ: tidings, aio-pika, FastStream and amqplib (Node.js)" in markdown
    for target in ("tidings / raw aio-pika", "tidings / FastStream", "tidings / amqplib"):
        assert f"RabbitMQ publish, {target}" in markdown
        assert f"RabbitMQ consume, {target}" in markdown
    rabbitmq = results_of(rabbitmq_report)["scenarios"]["rabbitmq"]
    assert set(rabbitmq["throughput"]) == {"tidings", "aio-pika", "faststream", "amqplib"}
    assert set(rabbitmq["throughput"]["amqplib"]) == {"publish", "consume"}
    assert "amqplib" not in rabbitmq["latency"][rabbitmq["settings"]["rates"][0]]
    assert set(rabbitmq["throughput"]["tidings"]) == {"publish", "consume"}
    [rate] = rabbitmq["settings"]["rates"]  # one fixed rate in a quick run
    assert set(rabbitmq["latency"][rate]["faststream"]) == {"end_to_end", "confirm"}
    assert set(rabbitmq["latency"][rate]["tidings"]["end_to_end"]) == {"p50", "p95", "p99", "max"}
    assert_charts(
        rabbitmq_report,
        "rabbitmq-throughput.png",
        "rabbitmq-ratios.png",
        f"rabbitmq-latency-{rate}.png",
    )
    assert results_of(rabbitmq_report)["machine"]["RabbitMQ"][0].isdigit()  # a version


@pytest.mark.rabbitmq
def test_scaling_scenario_covers_workers_and_payloads(rabbitmq_report: Path) -> None:
    scaling = results_of(rabbitmq_report)["scenarios"]["scaling"]
    assert scaling["settings"]["workers"] == [1, 2]  # a quick run stops at 2 (full: 1, 2, 4)
    for transport in ("embedded", "rabbitmq"):
        assert set(scaling["transports"][transport]["workers"]) == {"1", "2"}
        assert set(scaling["transports"][transport]["payload"]) == {"100", "1024", "65536"}
    markdown = (rabbitmq_report / "benchmarks.md").read_text()
    assert "| 2 worker processes " in markdown and "| 64 KiB " in markdown
    assert_charts(rabbitmq_report, "scaling-workers.png", "scaling-payload.png")


@pytest.mark.rabbitmq
def test_memory_scenario_reads_worker_rss(rabbitmq_report: Path) -> None:
    memory = results_of(rabbitmq_report)["scenarios"]["memory"]
    for transport in ("embedded", "rabbitmq"):
        readings = memory["transports"][transport]
        assert set(readings) == {"idle_rss", "idle_peak", "load_peak", "load_rss"}
    markdown = (rabbitmq_report / "benchmarks.md").read_text()
    assert "idle worker memory, embedded broker (peak RSS)" in markdown
    assert_charts(rabbitmq_report, "worker-memory.png")


@pytest.mark.rabbitmq
def test_the_report_is_rewritten_from_its_json(rabbitmq_report: Path, tmp_path: Path) -> None:
    # Given the results of a run; When the report is written again from them alone
    results = rabbitmq_report / "benchmarks" / "results.json"
    harness("--from-json", str(results), "--out", str(tmp_path))
    # Then it is the same page, with its charts
    assert (tmp_path / "benchmarks.md").read_text() == (
        rabbitmq_report / "benchmarks.md"
    ).read_text()
    assert_charts(tmp_path, "scaling-workers.png", "worker-memory.png")
