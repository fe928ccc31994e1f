"""`tidings demo`: the README's main command, checked against the seeded failure plan."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401
from tests.servers import RabbitNode, delete_namespace, rabbitmq_node  # noqa: F401
from tests.support import Child, Children, wait_for
from tidings.examples.plan import Settings
from tidings.examples.shop.payment import declines, loses_answer
from tidings.examples.streaming import expected_outcome as streaming_outcome

from .conftest import cli, group_stats


def shop_plan(seed: int, orders: int) -> dict[str, int]:
    """The shop's final counts from the plan: orders whose card is declined or whose payment
    answer is lost (then the payment timeout fires) are compensated."""
    ids = [f"o-{n:05d}" for n in range(1, orders + 1)]
    compensated = sum(1 for i in ids if declines(seed, i) or loses_answer(seed, i))
    return {
        "orders": orders,
        "completed": orders - compensated,
        "compensated": compensated,
        "dead_lettered": 0,
    }


def summary(demo: Child) -> dict[str, Any]:
    """The JSON summary ``tidings demo --json`` printed (on stdout, which the child's log
    shares with its log lines on stderr)."""
    line = next(x for x in reversed(demo.log.splitlines()) if x.startswith('{"scenario"'))
    return dict(json.loads(line))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty directory for the demo to run in (the children's logs go beside it)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


INVARIANTS = {
    "every order completed or compensated",
    "no order charged twice",
    "no charge without an order",
    "compensated orders refunded, completed ones charged",
    "stock conserved",
}


def holds(result: dict[str, Any]) -> None:
    """Every invariant was checked in the shop's database, and holds."""
    assert set(result["invariants"]) == INVARIANTS
    assert all(result["invariants"].values()), result["invariants"]


@pytest.mark.slow
def test_demo_shop_on_a_fresh_machine(children: Children, work: Path) -> None:
    # Given nothing but the installed package (temporary broker and database files)
    # When the README's main command runs with 80 orders, in worker processes
    demo = children.tidings(
        "demo", "shop", "--orders", "80", "--json", "--time-scale", "0.2", cwd=work
    )

    # Then it exits 0, every order is completed or compensated as the plan says
    demo.expect_exit(0, 100)
    result = summary(demo)
    assert result["counts"] == shop_plan(7, 80)
    assert result["counts"]["completed"] + result["counts"]["compensated"] == 80
    assert result["processes"] == 3
    holds(result)
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    # and it leaves no file behind
    assert list(work.iterdir()) == []


@pytest.mark.slow
def test_demo_text_summary(children: Children, work: Path) -> None:
    demo = children.tidings(
        "demo", "--orders", "40", "--processes", "2", "--time-scale", "0.1", cwd=work
    )
    demo.expect_exit(0, 100)
    plan = shop_plan(7, 40)
    assert f"40 orders: {plan['completed']} completed, {plan['compensated']} compensated" in (
        demo.log
    )
    assert "p50" in demo.log and "p99" in demo.log
    assert "2 worker processes" in demo.log
    # and the hint to keep the broker is a command that works as printed (default name)
    hint = "tidings demo shop --url sqlite:///demo.db, then tidings queues --url sqlite:///demo.db"
    assert hint in " ".join(demo.log.split())
    assert "stock conserved yes" in " ".join(demo.log.split())


@pytest.mark.slow
def test_killing_a_worker_changes_nothing(children: Children, work: Path) -> None:
    # Given the shop demo running in three worker processes on a broker file we can watch
    url = f"sqlite:///{work / 'demo.db'}"
    args = ["--orders", "100", "--processes", "3", "--time-scale", "0.5", "--seed", "5"]
    demo = children.tidings(
        "--log-level", "INFO", "demo", "shop", *args, "--url", url, "--json", cwd=work
    )
    pids = wait_for(
        lambda: (
            [int(p) for p in re.findall(r"started \(pid (\d+)\)", demo.log)][:3]
            if demo.log.count("started (pid") == 3
            else None
        ),
        what="three workers",
    )

    # When one worker is killed while deliveries are in flight
    def busy() -> bool:
        stats = group_stats(url)
        return sum(s.get("in_flight", 0) for s in stats.values()) > 0

    wait_for(busy, what="deliveries in flight")
    os.kill(pids[1], signal.SIGKILL)

    # Then the demo still finishes, with exactly the counts of the plan
    demo.expect_exit(0, 100)
    assert f"(pid {pids[1]}) exited with status -9" in demo.log
    assert summary(demo)["counts"] == shop_plan(5, 100)
    holds(summary(demo))


@pytest.mark.rabbitmq
@pytest.mark.slow
async def test_demo_shop_on_rabbitmq(
    children: Children,
    work: Path,
    rabbitmq_node: RabbitNode,  # noqa: F811
) -> None:
    # Given the private RabbitMQ node and a bus name of our own (the shop's groups use the
    # inbox, so they need no dedupe store)
    name = f"demo{uuid.uuid4().hex[:10]}"
    args = ["demo", "shop", "--url", rabbitmq_node.url, "--name", name, "--orders", "30"]
    try:
        # When the shop demo runs on it, in worker processes
        demo = children.tidings(*args, "--time-scale", "0.05", "--json", cwd=work)
        assert await asyncio.to_thread(demo.wait, 100) == 0, demo.log
    finally:
        await delete_namespace(rabbitmq_node, name)
    # Then every order ends as the plan says, and the invariants hold
    result = summary(demo)
    assert result["processes"] == 3
    assert result["counts"] == shop_plan(7, 30)
    holds(result)
    assert "guest:guest" not in demo.log


@pytest.mark.slow
def test_demo_shop_chaos_on_the_embedded_broker(children: Children, work: Path) -> None:
    # Given the shop in three worker processes, one of them killed every second or so
    demo = children.tidings(
        "demo", "shop", "--orders", "60", "--time-scale", "0.2", "--chaos", "--chaos-every",
        "1.5", "--json", cwd=work,
    )  # fmt: skip

    # Then every invariant holds in the shop's database, whatever was killed when
    demo.expect_exit(0, 150)
    result = summary(demo)
    assert result["workers_killed"] >= 1
    assert result["counts"]["orders"] == 60
    assert result["counts"]["completed"] + result["counts"]["compensated"] == 60
    holds(result)


@pytest.mark.rabbitmq
@pytest.mark.slow
async def test_demo_shop_chaos_on_rabbitmq(
    children: Children,
    work: Path,
    rabbitmq_node: RabbitNode,  # noqa: F811
) -> None:
    name = f"chaos{uuid.uuid4().hex[:10]}"
    try:
        demo = children.tidings(
            "demo", "shop", "--url", rabbitmq_node.url, "--name", name, "--orders", "40",
            "--time-scale", "0.1", "--chaos", "--chaos-every", "1.5", "--json", cwd=work,
        )  # fmt: skip
        assert await asyncio.to_thread(demo.wait, 150) == 0, demo.log
    finally:
        await delete_namespace(rabbitmq_node, name)
    result = summary(demo)
    assert result["workers_killed"] >= 1
    assert result["counts"]["completed"] + result["counts"]["compensated"] == 40
    holds(result)


@pytest.mark.postgres
@pytest.mark.slow
async def test_demo_shop_on_postgresql(
    children: Children,
    work: Path,
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    # Given the shop's database on PostgreSQL (the broker: a temporary embedded one)
    database = await postgres_server.create_database()
    demo = children.tidings(
        "demo", "shop", "--orders", "40", "--time-scale", "0.1", "--database", database,
        "--json", cwd=work,
    )  # fmt: skip

    # Then its tables, outbox, inbox and sagas live there, and every order ends as planned
    assert await asyncio.to_thread(demo.wait, 100) == 0, demo.log
    result = summary(demo)
    assert result["counts"] == shop_plan(7, 40)
    holds(result)


def test_chaos_needs_worker_processes() -> None:
    result = cli("demo", "--chaos", "--url", "memory://chaos")
    assert result.exit_code == 2 and "--chaos kills worker processes" in result.output


def test_demo_on_the_memory_transport_runs_in_process() -> None:
    result = cli(
        "demo", "--orders", "50", "--url", "memory://demo-test", "--time-scale", "0.1", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["scenario"] == "shop" and summary["processes"] == 0
    assert summary["counts"] == shop_plan(7, 50)
    holds(summary)


def test_demo_streaming_matches_the_plan() -> None:
    result = cli(
        "demo", "streaming", "-n", "120", "--seed", "3", "--url", "memory://demo-streaming",
        "--time-scale", "0.1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["counts"]
    assert counts == streaming_outcome(3, 120)
    assert counts["analytics_recorded"] + counts["analytics_dead_lettered"] == 120


def test_demo_signup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'signup.db'}"
    result = cli(
        "demo", "signup", "-n", "12", "--url", url, "--processes", "0", "--time-scale", "0.01"
    )
    assert result.exit_code == 0, result.output
    assert "12 sign-ups answered at once; 12 welcome e-mails sent" in result.stdout
    # the broker was kept: its groups are there, empty
    stats = group_stats(url)
    assert stats["email"]["ready"] == 0 and stats["points"]["ready"] == 0


def test_demo_that_cannot_finish_fails_in_one_line() -> None:
    # e-mails of 2 s * 10 cannot all go out within 1 s
    settings = Settings(time_scale=10.0)
    assert settings.seconds(2.0) > 1.0
    result = cli(
        "demo", "signup", "-n", "3", "--url", "memory://demo-slow", "--time-scale", "10",
        "--timeout", "1",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "did not finish within 1s" in result.output
    assert "Traceback" not in result.output


def test_unknown_scenario_is_refused() -> None:
    result = cli("demo", "bakery")
    assert result.exit_code != 0
    assert "bakery" in result.output
