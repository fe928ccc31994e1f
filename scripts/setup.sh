#!/usr/bin/env bash
# Set up a checkout: the servers the tests and benchmarks start privately (RabbitMQ, Redis,
# installed with apt-get when missing), and .venv with the project and its dev extras.
# Needs Python 3.11+ (PYTHON picks the interpreter). Used by scripts/test.sh and
# scripts/bench.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
bash scripts/install-servers.sh
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
