"""Acceptance: the first hour with the CLI, through the real entry point. A ``shop.py`` whose
bus is on ``shop.db``: ``tidings run shop:bus`` runs it, and ``--app shop:bus`` makes
``publish`` and ``queues`` use that same broker, whatever ``TIDINGS_URL`` says; without
``--app`` nothing points at shop.db, and the CLI says so instead of creating a file."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import pytest

from tests.support import Child, Children, wait_for

pytestmark = pytest.mark.slow

SHOP = textwrap.dedent(
    """
    from pathlib import Path

    from tidings import Bus, Context, Event

    bus = Bus("sqlite:///shop.db")


    class OrderPlaced(Event, type="order.placed"):
        order_id: str


    @bus.subscribe("order.placed", group="inventory")
    async def reserve_stock(event: OrderPlaced, ctx: Context) -> None:
        Path(f"reserved-{event.order_id}").write_text(ctx.event_id)
    """
)


def tidings(children: Children, shop: Path, *args: str, **env: str) -> Child:
    """``tidings ARGS`` in the shop's directory, finished (a minute at most)."""
    child = children.tidings(*args, cwd=shop, **env)
    child.wait(60)
    return child


def test_app_points_publish_and_queues_at_the_apps_broker(
    children: Children, tmp_path: Path
) -> None:
    # Given shop.py on shop.db, running as `tidings run shop:bus`, and a TIDINGS_URL that
    # names another broker in the shell of the commands that follow
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "shop.py").write_text(SHOP)
    worker = children.tidings("run", "shop:bus", cwd=shop, TIDINGS_URL="")
    elsewhere = {"TIDINGS_URL": f"sqlite:///{tmp_path / 'elsewhere.db'}"}

    def consuming() -> bool:
        assert worker.proc.poll() is None, worker.log
        listed = tidings(children, shop, "queues", "--json", "--app", "shop:bus", **elsewhere)
        rows = json.loads(listed.log) if listed.proc.returncode == 0 else []
        return any(r["group"] == "inventory" and r["consumers"] == 1 for r in rows)

    wait_for(consuming, what="the worker's consumer on shop.db")

    # When an order is published with --app
    published = tidings(
        children, shop, "publish", "order.placed", "--data", '{"order_id": "o-1"}',
        "--app", "shop:bus", **elsewhere,
    )  # fmt: skip

    # Then it reached the worker through shop.db
    assert published.proc.returncode == 0, published.log
    event_id = published.log.strip()
    reserved = shop / "reserved-o-1"
    wait_for(lambda: reserved.exists() and reserved.read_text(), what="the order handled")
    assert reserved.read_text() == event_id
    table = tidings(children, shop, "queues", "--app", "shop:bus", **elsewhere)
    assert table.proc.returncode == 0, table.log
    assert any(line.split()[:1] == ["inventory"] for line in table.log.splitlines())

    # And without --app (nor TIDINGS_URL), `queues` says where it looked, creating nothing
    lost = tidings(children, shop, "queues", TIDINGS_URL="")
    assert lost.proc.returncode == 1
    assert lost.log.strip().splitlines() == [
        f"error: no broker file at {shop / 'tidings.db'} (the default); point at one with "
        "--url sqlite:///path.db or --app module:bus (or set TIDINGS_URL)"
    ]
    assert not (shop / "tidings.db").exists()
    assert not (tmp_path / "elsewhere.db").exists()

    worker.signal(signal.SIGTERM)
    worker.expect_exit(0, 30)
