"""Options of the Kafka transport (``Bus("kafka://...", **options)``).

This module imports no driver: options are checked, and unknown ones refused, even where
aiokafka is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..._exceptions import ConfigError

__all__ = ["KafkaOptions", "from_query"]


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """The Kafka transport's own options; each is checked when the object is made.

    Attributes:
        partitions: partitions of each topic the transport creates (event types, a group's
            commands and retry tiers): the most consumers of one group that share its work,
            and the unit an ordered group's waiting retry holds back.
        replication_factor: replicas of each topic it creates (3 on a production cluster).
        session_timeout: seconds without a heartbeat before the group coordinator drops a
            consumer and gives its partitions to the others (a killed worker's partitions
            move after this long).
        heartbeat_interval: seconds between two heartbeats (a third of `session_timeout`
            or less).
        metadata_max_age: seconds between two metadata refreshes: a topic created for a new
            event type reaches a group subscribed by a wildcard pattern within this time.
        connect_timeout: seconds the first connection may take before `BrokerUnavailable`.
        publish_timeout: seconds a publish may wait for the broker's acknowledgement.
        max_batch_size: bytes of records the producer puts in one batch per partition
            (aiokafka's ``max_batch_size``). tansu reports a wrong end offset (high
            watermark) after a batch of several records, which makes lag and replay miss
            records there: use ``max_batch_size=1`` (one record per batch) on tansu. The
            transport's own tables (bindings, dead letters, attempt counts) are always
            written one record per batch.
        drain_timeout: seconds a rebalance waits for the handlers of revoked partitions to
            settle before giving the partitions up (their deliveries then come again
            elsewhere, at least once).

    Raises:
        ConfigError: a value of the wrong kind, naming the option.
    """

    partitions: int = 6
    replication_factor: int = 1
    session_timeout: float = 10.0
    heartbeat_interval: float = 3.0
    metadata_max_age: float = 2.0
    connect_timeout: float = 10.0
    publish_timeout: float = 30.0
    drain_timeout: float = 30.0
    max_batch_size: int = 16384

    def __post_init__(self) -> None:
        for name in ("partitions", "replication_factor", "max_batch_size"):
            _positive_int(name, getattr(self, name))
        for name in (
            "session_timeout",
            "heartbeat_interval",
            "metadata_max_age",
            "connect_timeout",
            "publish_timeout",
            "drain_timeout",
        ):
            object.__setattr__(self, name, _positive_seconds(name, getattr(self, name)))
        if self.heartbeat_interval >= self.session_timeout:
            raise ConfigError(
                f"heartbeat_interval ({self.heartbeat_interval:g}s) must be shorter than "
                f"session_timeout ({self.session_timeout:g}s)"
            )


def from_query(query: dict[str, str]) -> dict[str, int | float]:
    """Options given in a URL's query (text), as numbers of their fields' kinds.

    Raises:
        ConfigError: an option `KafkaOptions` does not have, or a value that is not a number.
    """
    kinds = {"partitions": int, "replication_factor": int, "max_batch_size": int}
    known = set(KafkaOptions.__dataclass_fields__)
    out: dict[str, int | float] = {}
    for name, text in query.items():
        if name not in known:
            raise ConfigError(
                f"unknown kafka option {name!r} in the URL; known: {', '.join(sorted(known))}"
            )
        try:
            out[name] = kinds.get(name, float)(text)
        except ValueError:
            raise ConfigError(f"kafka option {name} must be a number, not {text!r}") from None
    return out
