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
# The official AsyncAPI JSON Schemas, which the tests validate `tidings asyncapi` against
# (tests/schemas/test_asyncapi.py); once, into .cache/npm.
if [ ! -f .cache/npm/node_modules/@asyncapi/specs/schemas/3.0.0-without-\$id.json ]; then
    if command -v npm >/dev/null 2>&1; then
        npm install --silent --no-audit --no-fund --prefix .cache/npm @asyncapi/specs@6 >/dev/null
    else
        echo "setup: npm not found; the AsyncAPI tests need Node.js and npm" >&2
    fi
fi
# The Node.js amqplib client the RabbitMQ benchmark measures as the client-side ceiling
# (benchmarks/node, pinned by its lock file); the benchmark tests run it.
if [ ! -d benchmarks/node/node_modules/amqplib ]; then
    if command -v npm >/dev/null 2>&1; then
        npm ci --silent --no-audit --no-fund --prefix benchmarks/node >/dev/null
    else
        echo "setup: npm not found; the RabbitMQ benchmark's amqplib client needs Node.js" >&2
    fi
fi
