"""The Prometheus alert rules and the Grafana dashboard in docs/observability load, and use
only metrics that `Prometheus()` exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tidings import Bus, Event, Permanent, Retry
from tidings.observability import METRIC_NAMES, Prometheus
from tidings.testing import TestBus

DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability"
_METRIC = re.compile(r"\btidings_[a-z_]+\b")


class OrderPlaced(Event, type="order.placed", version=1):
    order_id: str


class BusWithOutbox(Bus):
    """What `Bus(database=...)` will offer: `outbox_stats()`."""

    database = "sqlite+aiosqlite:///app.db"

    async def outbox_stats(self) -> Any:
        class OutboxStats:
            pending, dead, oldest_age = 2, 0, 3.0

        return OutboxStats()


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    """The name of every sample `Prometheus()` exposes once everything was recorded."""
    import asyncio

    registry = CollectorRegistry()
    prometheus = Prometheus(registry=registry)
    bus = BusWithOutbox("memory://", middleware=[prometheus])

    @bus.subscribe("order.placed", group="billing", retry=Retry(attempts=1))
    async def bill(event: OrderPlaced) -> None:
        raise Permanent("declined")

    async def record() -> None:
        async with TestBus(bus) as tb:
            await bus.publish(OrderPlaced(order_id="o-1"))
            await tb.drain()
            await prometheus.refresh(bus)

    asyncio.run(record())
    prometheus.saga_completed("checkout", "completed", 1.0)
    names = {s.name for family in registry.collect() for s in family.samples}
    for metric in METRIC_NAMES:  # every documented metric, with samples
        assert names & {metric, f"{metric}_count"}, metric
    return names


def test_alert_rules_have_the_structure_prometheus_expects(exposed: set[str]) -> None:
    document = yaml.safe_load((DOCS / "alerts.yml").read_text())
    assert set(document) == {"groups"}
    [group] = document["groups"]
    assert set(group) == {"name", "rules"} and group["name"]
    names = [rule["alert"] for rule in group["rules"]]
    assert len(names) == len(set(names)) >= 5
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["for"]
        assert all(isinstance(v, str) for v in rule.get("labels", {}).values())
        assert set(rule.get("annotations", {})) <= {"summary", "description", "runbook_url"}
        used = set(_METRIC.findall(rule["expr"]))
        assert used and used <= exposed, (rule["alert"], used - exposed)
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
    # the rules `tidings queues` evaluates, and the outbox's age
    covered = " ".join(rule["expr"] for rule in group["rules"])
    for metric in (
        "tidings_group_ready", "tidings_group_consumers", "tidings_dlq_events_total",
        "tidings_outbox_oldest_age_seconds",
    ):  # fmt: skip
        assert metric in covered, metric


def test_the_dashboard_uses_only_metrics_that_exist(exposed: set[str]) -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["uid"]
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(expressions) >= 10
    used = {name for expr in expressions for name in _METRIC.findall(expr)}
    everywhere = set(_METRIC.findall(json.dumps(dashboard)))  # variables' queries too
    assert everywhere <= exposed, everywhere - exposed
    # every documented metric has a panel
    for metric in METRIC_NAMES:
        assert any(name.startswith(metric.removesuffix("_total")) for name in used), metric
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
