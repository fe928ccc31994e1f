"""The outbox benchmark runs (on a tiny size, starting its own PostgreSQL), and its hand-written
section of ``docs/benchmarks.md`` survives the page being written again by the harness. The
numbers are not checked here; benchmarks are not timed tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEPT_START = "<!-- benchmarks:kept:start -->"
KEPT_END = "<!-- benchmarks:kept:end -->"

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_outbox_benchmark_prints_its_tables(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "outbox.py"),
            *("--rows", "200", "--per-commit", "50", "--rate", "20", "--seconds", "0.5"),
            *("--rounds", "1"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "commit-to-handler latency on PostgreSQL, 10 messages at 20/s" in out
    for mode in ("NOTIFY", "polling only", "same process"):
        assert f"  {mode} " in out, mode
    assert "outbox throughput, 200 messages, 50 per transaction" in out
    for row in ("  SQLite ", "  PostgreSQL "):
        assert row in out, row
    assert "staging" in out and "relaying" in out and "both at once" in out
    assert "machine: " in out and "(fsync on)" in out
    assert list(tmp_path.iterdir()) == []  # its temporary files are gone


def test_hand_written_sections_survive_a_regeneration(tmp_path: Path) -> None:
    # Given the page with a section written by hand, between the markers
    page = tmp_path / "benchmarks.md"
    kept = f"{KEPT_START}\n## By hand\n\nmeasured with a script of its own\n\n{KEPT_END}"
    page.write_text(f"# Benchmarks\n\n## Old generated part\n\nstale\n\n{kept}\n")
    results = tmp_path / "results.json"
    shutil.copy(ROOT / "docs" / "benchmarks" / "results.json", results)

    # When the harness writes the page again from its results
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--from-json", str(results), "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )

    # Then the generated part is new, and the hand-written section is kept before the machine
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    markdown = page.read_text()
    assert "stale" not in markdown and "## Targets" in markdown
    assert markdown.count(kept) == 1
    where = markdown.index(kept)
    assert markdown.index("## Embedded broker") < where < markdown.index("## Machine")


def test_the_docs_page_keeps_the_outbox_and_observability_sections() -> None:
    markdown = (ROOT / "docs" / "benchmarks.md").read_text()
    sections = markdown.split(KEPT_START)[1:]
    titles = [s.split("\n## ", 1)[1].split("\n", 1)[0] for s in sections if KEPT_END in s]
    assert titles == [
        "Before and after the performance work",
        "Observability middleware",
        "Outbox and inbox",
        "Request/reply round trip",
        "Kafka (tansu): tidings, aiokafka and FastStream",
    ]
