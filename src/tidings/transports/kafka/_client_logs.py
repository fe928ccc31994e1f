"""Keeping aiokafka's own log lines out of an application's log.

A broker that does not answer makes aiokafka log an ERROR per connection attempt, and a
rebalance a few INFO lines per consumer; tidings raises one clear error where an operation
fails (`BrokerUnavailable` naming the bootstrap servers). So while a Kafka transport is open
(or opening), a `logging.Filter` on aiokafka's module loggers drops their records, unless the
logger is enabled for DEBUG (``--log-level debug``, or
``logging.getLogger("aiokafka").setLevel(logging.DEBUG)``): whoever asks for the detail gets
it. The filter goes when the last Kafka transport of the process closes.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["quiet_client_logs", "restore_client_logs"]

_KNOWN = (
    "aiokafka",
    "aiokafka.admin.client",
    "aiokafka.cluster",
    "aiokafka.conn",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.subscription_state",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)


class _DebugOnly(logging.Filter):
    """Lets a record through only when its logger is enabled for DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_filter = _DebugOnly()
_lock = threading.Lock()
_users = 0
_filtered: list[logging.Logger] = []


def quiet_client_logs() -> None:
    """Install the filter (one more transport open); pair with `restore_client_logs`."""
    global _users
    with _lock:
        _users += 1
        if _users == 1:
            names = set(_KNOWN) | {
                name
                for name in list(logging.root.manager.loggerDict)
                if name.startswith("aiokafka")
            }
            _filtered[:] = [logging.getLogger(name) for name in sorted(names)]
            for target in _filtered:
                target.addFilter(_filter)


def restore_client_logs() -> None:
    """One transport fewer; the last one removes the filter."""
    global _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0:
            for target in _filtered:
                target.removeFilter(_filter)
            _filtered.clear()
