"""Alerts that notify: ``tidings queues --watch --alert-webhook URL`` posts an alert once when
it starts firing and once when it resolves, and a failing webhook never stops the watch."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support import Children, wait_for
from tidings import Bus, Event, GroupStats
from tidings._cli import app
from tidings._cli.alerts import AlertWebhook


class Noted(Event, type="test.noted"):
    n: int


class Receiver:
    """A webhook on 127.0.0.1: the JSON bodies and Authorization headers it received."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.bodies.append(json.loads(self.rfile.read(length)))
                received.auth.append(self.headers.get("Authorization"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def start_bus(url: str, *, consume: bool, handled: asyncio.Event | None = None) -> Bus:
    bus = Bus(url, consume=consume)

    @bus.subscribe("test.#", group="alpha")
    async def handle(event: Noted) -> None:
        if handled is not None:
            handled.set()

    await bus.start()
    return bus


def test_the_watch_posts_firing_then_resolved(
    receiver: Receiver, children: Children, tmp_path: Path
) -> None:
    # Given a group with an event waiting and no consumer (the "no consumers" rule fires)
    url = f"sqlite:///{tmp_path / 'bus.db'}"

    async def wait_with_no_consumer() -> None:
        bus = await start_bus(url, consume=False)
        await bus.publish(Noted(n=1))
        await bus.close()

    run(wait_with_no_consumer())

    # When `queues --watch` runs with a webhook (with credentials in its URL)
    hook = f"http://ops:s3cret@127.0.0.1:{receiver.port}/alerts"
    watch = children.tidings(
        "queues", "--watch", "--json", "--interval", "0.1", "--url", url, "--alert-webhook", hook
    )

    # Then the rule is posted once as firing
    wait_for(lambda: receiver.bodies, what="the firing alert")
    [firing] = receiver.bodies
    assert {k: v for k, v in firing.items() if k != "at"} == {
        "status": "firing",
        "rule": "no_consumers",
        "group": "alpha",
        "message": "no consumers while 1 messages wait",
        "value": 1,
    }
    assert datetime.fromisoformat(firing["at"]).tzinfo is not None
    assert receiver.auth[0] == "Basic " + base64.b64encode(b"ops:s3cret").decode()

    # And when a consumer takes the event, the rule is posted once as resolved
    async def consume_it() -> None:
        handled = asyncio.Event()
        bus = await start_bus(url, consume=True, handled=handled)
        await asyncio.wait_for(handled.wait(), 30)
        await bus.close()

    run(consume_it())
    wait_for(lambda: len(receiver.bodies) >= 2, what="the resolved alert")
    lines_then = len(watch.log.splitlines())
    wait_for(lambda: len(watch.log.splitlines()) > lines_then + 3, what="more refreshes")
    assert [(b["status"], b["rule"], b["group"]) for b in receiver.bodies] == [
        ("firing", "no_consumers", "alpha"),
        ("resolved", "no_consumers", "alpha"),
    ]
    assert receiver.bodies[1]["value"] == 0
    assert receiver.bodies[1]["message"] == firing["message"]
    watch.signal(signal.SIGINT)
    watch.expect_exit(0)
    assert "s3cret" not in watch.log


def alert(group: str, *lines: str, **numbers: Any) -> GroupStats:
    return GroupStats(group, alerts=tuple(lines), **numbers)


async def test_each_rule_and_group_is_posted_once_per_change() -> None:
    # Given a webhook notifier whose posts are recorded
    posted: list[dict[str, Any]] = []
    webhook = AlertWebhook(
        "http://127.0.0.1:9/hook", post=lambda url, body: posted.append(json.loads(body))
    )
    backlog = "backlog: 1500 ready, over the threshold of 1000"
    rate = "publish rate 9.0/s is over twice the ack rate 1.0/s"
    dlq = "dead-letter queue growing: 2 new in the last 5 minutes"

    # When refreshes show rules starting, staying and stopping
    webhook.update([alert("a", backlog, ready=1500), alert("b", rate, publish_rate=9.0)])
    webhook.update([alert("a", backlog, ready=1600), alert("b", rate, dlq, dead_recent=2)])
    webhook.update([alert("a", ready=10), alert("b", dlq, dead_recent=3)])
    await webhook.close()

    # Then each (rule, group) is posted when it starts firing and when it stops, in order
    assert [(p["status"], p["rule"], p["group"], p["value"]) for p in posted] == [
        ("firing", "backlog", "a", 1500),
        ("firing", "publish_rate", "b", 9.0),
        ("firing", "dlq_growing", "b", 2),
        ("resolved", "backlog", "a", 10),
        ("resolved", "publish_rate", "b", None),
    ]


async def test_the_outbox_age_rule_fires_for_a_bus_with_an_outbox() -> None:
    # Given outbox statistics, as `bus.outbox_stats()` returns them
    class OutboxStats:
        def __init__(self, pending: int, oldest_age: float) -> None:
            self.pending, self.dead, self.oldest_age = pending, 0, oldest_age

    posted: list[dict[str, Any]] = []
    webhook = AlertWebhook(
        "https://hooks.example/x", post=lambda u, b: posted.append(json.loads(b))
    )

    # When the outbox's oldest message waits past a minute, then is sent
    webhook.update([], OutboxStats(pending=4, oldest_age=12.0))
    webhook.update([], OutboxStats(pending=4, oldest_age=95.0))
    webhook.update([], OutboxStats(pending=0, oldest_age=0.0))
    await webhook.close()

    # Then it fired once and resolved once
    assert [(p["status"], p["rule"], p["group"], p["value"]) for p in posted] == [
        ("firing", "outbox_age", "outbox", 95.0),
        ("resolved", "outbox_age", "outbox", 0.0),
    ]


async def test_a_failing_webhook_is_logged_masked_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a webhook that always fails
    tries: list[str] = []

    def post(url: str, body: bytes) -> None:
        tries.append(json.loads(body)["status"])
        raise ConnectionRefusedError(f"cannot reach {url}")

    hook = "http://ops:s3cret@127.0.0.1:9/hook"
    webhook = AlertWebhook(hook, post=post, retry_delays=(0.0, 0.0))

    # When an alert fires and resolves
    with caplog.at_level(logging.WARNING):
        webhook.update([alert("a", "no consumers while 3 messages wait", ready=3)])
        await webhook.close()
        webhook.update([alert("a")])
        await webhook.close()

    # Then each notification was tried three times, and each failure logged once, masked
    assert tries == ["firing"] * 3 + ["resolved"] * 3
    failures = [r.getMessage() for r in caplog.records if "alert webhook" in r.getMessage()]
    assert len(failures) == 2
    assert "http://ops:***@127.0.0.1:9/hook" in failures[0]
    assert "dropped the firing notification of no_consumers for a" in failures[0]
    assert "s3cret" not in caplog.text


def test_the_webhook_needs_watch_and_an_http_url() -> None:
    runner = CliRunner()
    alone = runner.invoke(app, ["queues", "--alert-webhook", "http://127.0.0.1:9/x"])
    assert alone.exit_code == 2
    assert "--alert-webhook needs --watch" in alone.output
    bad = runner.invoke(app, ["queues", "--watch", "--alert-webhook", "file:///etc/passwd"])
    assert bad.exit_code == 1
    assert "must be an http:// or https:// URL" in bad.output
