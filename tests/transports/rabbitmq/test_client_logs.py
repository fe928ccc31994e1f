"""While a RabbitMQ bus is open, the client libraries' own log lines stay out of the
application's log unless their logger is enabled for DEBUG; after it closes, nothing of the
application's logging is changed."""

import logging

import pytest

pytestmark = pytest.mark.rabbitmq


def _seen(caplog, text: str) -> bool:
    return any(r.getMessage() == text for r in caplog.records)


async def test_client_lines_are_dropped_while_open_unless_debug_is_asked(namespace, caplog):
    client = logging.getLogger("aiormq.connection")
    bus = namespace.bus(consume=False)
    async with bus:
        # While the bus is open, a client ERROR line is dropped
        client.error("client noise while open")
        assert not _seen(caplog, "client noise while open")
        # unless the library's logger is enabled for DEBUG
        client.setLevel(logging.DEBUG)
        try:
            client.error("client detail asked for")
        finally:
            client.setLevel(logging.NOTSET)
        assert _seen(caplog, "client detail asked for")
    # After it closed, the line reaches the application's handlers again
    client.error("client line after close")
    assert _seen(caplog, "client line after close")
