"""The CLI stays light: a `tidings run` worker does not load the examples, SQLAlchemy or the
drivers of transports it does not use (what keeps an idle worker's memory small)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "aiosqlite", "alembic", "aiokafka", "aio_pika", "tidings.examples")


def test_importing_the_cli_loads_no_example_database_or_broker_driver() -> None:
    code = (
        "import json, sys; import tidings._cli; "
        "print(json.dumps(sorted({m.split('.')[0] if not m.startswith('tidings.') "
        "else '.'.join(m.split('.')[:2]) for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(out.stdout))
    assert "tidings._cli" in loaded  # the probe sees tidings' own modules
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
