#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every benchmark: rewrites docs/benchmarks.md, its charts
# and the README summary. Extra arguments go to `python -m benchmarks` (--quick, --only...).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
.venv/bin/python -m benchmarks "$@"
