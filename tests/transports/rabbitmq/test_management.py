"""Stats with and without the management API: a given URL is used (its port, the AMQP URL's
credentials and virtual host), and when the API cannot be reached stats fall back to AMQP
counters with one warning that says how to fix it."""

import base64
import contextlib
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.servers import free_port
from tests.support import eventually
from tidings import Bus, Event, Permanent

pytestmark = pytest.mark.rabbitmq

FIX = "rabbitmq-plugins enable rabbitmq_management"


class Job(Event, type="job.run", version=1):
    n: int


class Chore(Event, type="chore.run", version=1):
    n: int


class _FakeApi(BaseHTTPRequestHandler):
    """Records each request; answers every one with the server's `status` and `body`."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        server = self.server
        server.seen.append((self.path, self.headers.get("Authorization", "")))  # type: ignore[attr-defined]
        body = json.dumps(server.body).encode()  # type: ignore[attr-defined]
        self.send_response(server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _fake_management(status: int = 200) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeApi)
    server.seen, server.status, server.body = [], status, []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("tidings.transports.rabbitmq")
    ]


async def test_a_given_management_url_is_used_with_the_amqp_credentials(namespace, caplog):
    # Given a management API on a port of its own
    with _fake_management() as api:
        port = api.server_address[1]
        bus = namespace.bus(consume=False, management_url=f"http://127.0.0.1:{port}/")
        async with bus:
            # When the stats are read
            assert await bus.stats() == []
        # Then it was asked for the bus's queues in the URL's vhost, as the URL's user
        path, auth = api.seen[0]
        assert path.startswith("/api/queues/%2F?") and namespace.name in path
        assert auth == _basic("guest", "guest")
    assert _warnings(caplog) == []


async def test_credentials_in_the_management_url_win(namespace):
    with _fake_management() as api:
        port = api.server_address[1]
        bus = namespace.bus(consume=False, management_url=f"http://monitor:p%40ss@127.0.0.1:{port}")
        async with bus:
            await bus.stats()
        assert {auth for _, auth in api.seen} == {_basic("monitor", "p@ss")}


async def test_a_refused_login_is_named_in_the_warning(namespace, caplog):
    with _fake_management(status=401) as api:
        port = api.server_address[1]
        bus = namespace.bus(consume=False, management_url=f"http://127.0.0.1:{port}")
        async with bus:
            await bus.stats()
    (line,) = _warnings(caplog)
    assert "refused user 'guest' (HTTP 401)" in line and "set_user_tags" in line


async def test_without_the_management_plugin_stats_come_from_amqp(bare_rabbitmq_node, caplog):
    # Given a stock node (no plugins), and a management URL nothing answers on: a port held
    # by this test and never listened on (the node's own unused management port could be
    # taken by a node started later in the session)
    node, name = bare_rabbitmq_node, f"t{uuid.uuid4().hex[:12]}"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    management = f"http://127.0.0.1:{closed.getsockname()[1]}"
    worker = Bus(node.url, name=name, management_url=management)

    @worker.subscribe("chore.run", group="chores")
    async def chore(event: Chore) -> None:
        raise Permanent("no chores today")

    inspector = Bus(node.url, name=name, management_url=management, consume=False)

    @inspector.subscribe("job.run", group="jobs")
    async def job(event: Job) -> None:
        pass

    @inspector.subscribe("chore.run", group="chores")
    async def same_chore(event: Chore) -> None:
        pass

    async with worker, inspector:
        # When three jobs wait, one is delayed and a chore is dead-lettered
        for n in range(3):
            await inspector.publish(Job(n=n))
        await inspector.publish(Job(n=9), delay=30.0)
        await inspector.publish(Chore(n=1))

        async def dead() -> bool:
            return {s.group: s for s in await inspector.stats()}["chores"].dead == 1

        await eventually(dead, 10, "the chore in the DLQ")
        stats = {s.group: s for s in await inspector.stats()}
    closed.close()
    # Then the inspecting bus sees the groups it declared, with AMQP's counters
    jobs, chores = stats["jobs"], stats["chores"]
    assert (jobs.ready, jobs.scheduled, jobs.dead, jobs.consumers) == (3, 1, 0, 0)
    assert (chores.ready, chores.dead, chores.consumers) == (0, 1, 1)
    # and nothing the management API would have told
    assert jobs.publish_rate is None and jobs.ack_rate is None and jobs.in_flight == 0
    # And one warning per transport says so, with the URL and both fixes
    lines = _warnings(caplog)
    assert len(lines) == 1, lines
    (line,) = lines
    assert management in line and "only AMQP counters" in line
    assert "--management-url" in line and "Bus(management_url=...)" in line and FIX in line
    assert "jobs" in line and "guest:" not in line


async def test_a_bus_that_declared_no_group_says_it_shows_none(bare_rabbitmq_node, caplog):
    # Given a management URL where nothing listens, and a bus that declared no group
    management = f"http://127.0.0.1:{free_port()}"
    bus = Bus(bare_rabbitmq_node.url, name="nothing", management_url=management, consume=False)
    async with bus:
        assert await bus.stats() == []
        assert await bus.stats() == []
    (line,) = _warnings(caplog)
    assert "groups this process declared (none)" in line and management in line
