"""``python -m benchmarks``: run every scenario and write the report.

Run from the repository root. It starts what it needs (a scratch directory for the embedded
broker files, a private RabbitMQ node from ``tests/servers.py``), runs each scenario
``--rounds`` times with the contenders alternating, prints the tables, and writes
``benchmarks.md``, ``benchmarks/*.png`` and ``benchmarks/results.json`` under ``--out``
(default ``docs/``; then the summary in README.md is updated too).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from ._embedded import SCENARIO as EMBEDDED
from ._lab import FULL, QUICK, Lab
from ._machine import describe
from ._memory import SCENARIO as MEMORY
from ._rabbitmq import SCENARIO as RABBITMQ
from ._report import CHARTS_DIR, RESULTS, Results, Scenario, targets_table, update_readme, write
from ._scaling import SCENARIO as SCALING

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (EMBEDDED, RABBITMQ, SCALING, MEMORY)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the tidings benchmarks and write docs/benchmarks.md with charts.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke tests)")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        metavar="SCENARIO,...",
        help=f"scenarios to run, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3, quick 1)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs", help="where benchmarks.md goes (docs/)"
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        default=Path.cwd(),
        help="a directory on the disk to measure; embedded broker files go in a temporary "
        "directory inside it (default: the current directory)",
    )
    parser.add_argument(
        "--rabbitmq-url", help="use this RabbitMQ instead of starting a private node"
    )
    parser.add_argument(
        "--no-rabbitmq", action="store_true", help="leave out everything that needs RabbitMQ"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="RESULTS",
        help=f"measure nothing: rewrite the report from a {RESULTS} of an earlier run",
    )
    return parser


def _choose(parser: argparse.ArgumentParser, only: str, no_rabbitmq: bool) -> list[Scenario]:
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown or not names:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")
    if no_rabbitmq and "rabbitmq" in names:
        names.remove("rabbitmq")
    return [SCENARIOS[n] for n in SCENARIOS if n in names]


def measure(args: argparse.Namespace, scenarios: list[Scenario]) -> Results:
    rounds = args.rounds or (1 if args.quick else 3)
    began = time.monotonic()
    args.scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bench-", dir=args.scratch) as scratch:
        lab = Lab(
            QUICK if args.quick else FULL,
            rounds,
            Path(scratch),
            rabbitmq_url=args.rabbitmq_url,
            use_rabbitmq=not args.no_rabbitmq,
        )
        try:
            data: dict[str, Results] = {}
            seconds: dict[str, float] = {}
            failed: dict[str, str] = {}
            for scenario in scenarios:
                print(f"== {scenario.title}", flush=True)
                started = time.monotonic()
                try:
                    data[scenario.name] = scenario.run(lab)
                except Exception as exc:  # the other scenarios still run; the exit status says
                    traceback.print_exc()
                    failed[scenario.name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                    continue
                seconds[scenario.name] = round(time.monotonic() - started, 1)
                print(scenario.render(data[scenario.name]), flush=True)
                print(f"({scenario.name}: {seconds[scenario.name]:.0f}s)", flush=True)
            machine = describe(Path(scratch), lab.rabbitmq() if lab.used_rabbitmq else None)
        finally:
            lab.close()
    return {
        "run": {
            "command": shlex.join(["python", "-m", "benchmarks", *sys.argv[1:]]),
            "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": round(time.monotonic() - began, 1),
            "scenario_seconds": seconds,
            "rounds": rounds,
            "quick": bool(args.quick),
            "failed": failed,
        },
        "machine": machine,
        "scenarios": data,
    }


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    scenarios = _choose(parser, args.only, args.no_rabbitmq)
    if args.from_json:
        results: Results = json.loads(args.from_json.read_text())
    else:
        results = measure(args, scenarios)
    out: Path = args.out
    failed = results["run"].get("failed", {})
    markdown = write(out, results, list(SCENARIOS.values()))
    if out.resolve() == (ROOT / "docs").resolve() and not failed:
        update_readme(ROOT / "README.md", results, list(SCENARIOS.values()))
    done = [s for s in SCENARIOS.values() if s.name in results["scenarios"]]
    print(targets_table([t for s in done for t in s.targets(results["scenarios"][s.name])]))
    print(f"wrote {markdown} and {out / CHARTS_DIR}/ in {results['run']['seconds']:.0f}s")
    if failed:
        raise SystemExit(f"scenarios that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
