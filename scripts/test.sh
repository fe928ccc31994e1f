#!/usr/bin/env bash
# Set up and run the whole test suite: what a developer types is what CI runs (.ci/run).
# Needs Python 3.11+; sets up .venv and the servers (scripts/setup.sh), then runs the
# linters, the type checker and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
echo "== mypy --strict"
.venv/bin/mypy
echo "== import-linter (the layers)"
.venv/bin/lint-imports --no-cache
echo "== module budget (400 lines)"
.venv/bin/python scripts/module_budget.py
echo "== pytest"
.venv/bin/python -m pytest "$@"
