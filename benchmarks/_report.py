"""The report: what a scenario hands over (sections, charts, targets), markdown tables, and
``benchmarks.md`` with its charts and ``results.json`` written to the output directory."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._kept import kept_sections
from ._lab import Lab

CHARTS_DIR = "benchmarks"  # under the output directory, next to benchmarks.md
RESULTS = "results.json"
README_START = "<!-- benchmarks:summary:start -->"
README_END = "<!-- benchmarks:summary:end -->"

Results = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A goal of the project next to what this run measured; `met` is None for a number
    the project reports without a goal (a ceiling it is compared with)."""

    measure: str
    goal: str
    measured: str
    met: bool | None


@dataclass(frozen=True)
class Chart:
    """A PNG written under the charts directory, with its caption."""

    file: str
    caption: str


@dataclass(frozen=True)
class Scenario:
    """One scenario: `run` measures and returns JSON-able results; the others turn such
    results (also ones read back from ``results.json``) into the report."""

    name: str
    title: str
    run: Callable[[Lab], Results]
    render: Callable[[Results], str]
    charts: Callable[[Results, Path], list[Chart]]
    targets: Callable[[Results], list[Target]]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: int = 1) -> str:
    """A markdown table, padded so it also reads as text; columns from `right` on are
    right-aligned."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(3, *(len(r[i]) for r in cells)) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i >= right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (w - 1) + ":") if i >= right else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(cells[0]), "| " + " | ".join(rule) + " |", *map(line, cells[1:])])


def targets_table(targets: Sequence[Target]) -> str:
    rows = [(t.measure, t.goal, t.measured, _verdict(t.met)) for t in targets]
    return table(("target", "goal", "measured (median)", ""), rows, right=4)


def _verdict(met: bool | None) -> str:
    return "reported" if met is None else "met" if met else "**missed**"


def number(value: float, digits: int = 0) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def write(
    out: Path,
    results: Results,
    scenarios: Sequence[Scenario],
    *,
    charts: bool = True,
) -> Path:
    """Write ``benchmarks.md``, the charts and ``results.json`` under `out`; return the
    markdown file."""
    charts_dir = out / CHARTS_DIR
    charts_dir.mkdir(parents=True, exist_ok=True)
    (charts_dir / RESULTS).write_text(json.dumps(results, indent=1) + "\n")
    done = [s for s in scenarios if s.name in results["scenarios"]]
    targets = [t for s in done for t in s.targets(results["scenarios"][s.name])]
    parts = [_preamble(results), "## Targets\n", targets_table(targets) + "\n"]
    for scenario in done:
        data = results["scenarios"][scenario.name]
        parts.append(f"## {scenario.title}\n")
        parts.append(scenario.render(data))
        if charts:
            for chart in scenario.charts(data, charts_dir):
                parts.append(f"![{chart.caption}]({CHARTS_DIR}/{chart.file})\n")
    failed = results["run"].get("failed", {})
    if failed:
        parts.append("## Not measured\n")
        parts.append("These scenarios failed in this run:\n")
        parts.append("\n".join(f"- {name}: `{error}`" for name, error in failed.items()) + "\n")
    markdown = out / "benchmarks.md"
    parts += kept_sections(markdown)  # written by hand: carried over
    parts.append(_machine(results))
    markdown.write_text("\n".join(parts).rstrip() + "\n")
    return markdown


def _preamble(results: Results) -> str:
    run = results["run"]
    return (
        "# Benchmarks\n\n"
        "What tidings costs against the raw clients and against FastStream, measured on one "
        "machine (described at the end). Every number is the median of "
        f"{run['rounds']} round(s), with the lowest and highest in parentheses; contenders "
        "alternate who runs first from round to round. Reproduce every table and chart "
        "from a checkout (it starts its own RabbitMQ node):\n\n"
        "```bash\n"
        "bash scripts/bench.sh    # sets up .venv and RabbitMQ, then python -m benchmarks\n"
        "```\n\n"
        f"This page was written by `{run['command']}` on {run['finished']} in "
        f"{run['seconds'] / 60:.1f} minutes; the raw numbers are in "
        f"[`{CHARTS_DIR}/{RESULTS}`]({CHARTS_DIR}/{RESULTS}), and "
        f"`python -m benchmarks --from-json docs/{CHARTS_DIR}/{RESULTS}` rewrites this page "
        "from them.\n"
    )


def _machine(results: Results) -> str:
    rows = [(k, str(v)) for k, v in results["machine"].items()]
    return "## Machine\n\n" + table(("", ""), rows, right=2) + "\n"


def update_readme(readme: Path, results: Results, scenarios: Sequence[Scenario]) -> bool:
    """Replace the summary between the markers in the README; False if it has none."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    targets = [
        t
        for s in scenarios
        if s.name in results["scenarios"]
        for t in s.targets(results["scenarios"][s.name])
    ]
    run = results["run"]
    summary = (
        f"{README_START}\n{targets_table(targets)}\n\n"
        f"Medians of {run['rounds']} rounds on {results['machine']['CPU']}, "
        f"{results['machine']['cores']} cores, {run['finished'][:10]}.\n{README_END}"
    )
    readme.write_text(pattern.sub(lambda _: summary, text))
    return True
