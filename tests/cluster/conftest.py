"""Fixtures of the cluster tests: the session's three-node cluster (`tests.rabbitmq_cluster`),
Redis, and the fault runs' counts, printed at the end of the session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rabbitmq_cluster import rabbitmq_cluster  # noqa: F401 - session fixture
from tests.servers import redis_server  # noqa: F401 - session fixture

FAULT_RUNS: list[dict[str, Any]] = []
"""One row per fault run: its name and confirmed, handled, lost and duplicated counts, and
how many retries the broker held until the lost node came back."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: needs the three-node RabbitMQ cluster")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FAULT_RUNS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("RabbitMQ cluster fault runs")
    write(f"{'run':<34}{'confirmed':>10}{'handled':>9}{'lost':>6}{'duplicated':>11}{'held':>6}")
    for row in FAULT_RUNS:
        write(
            f"{row['run']:<34}{row['confirmed']:>10}{row['handled']:>9}"
            f"{row['lost']:>6}{row['duplicated']:>11}{row['held']:>6}"
        )
