"""Options of the RabbitMQ transport (``Bus("amqp://...", **options)``).

This module imports no driver: options are checked, and unknown ones refused, even where
aio-pika is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..._exceptions import ConfigError

__all__ = ["RabbitMQOptions"]


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class RabbitMQOptions:
    """The RabbitMQ transport's own options; each is checked when the object is made.

    Attributes:
        queue_type: ``"classic"`` or ``"quorum"``: the type of the groups' queues; a group
            with ``max_ready`` needs ``"quorum"``. An ordered group's partitions are quorum
            queues either way (their ``x-delivery-count`` counts a retry's attempts).
        partitions: single-active-consumer queues per ordered group (one key always lands
            on one partition); each is served one delivery at a time, so this is the most
            deliveries of an ordered group in flight at once.
        publish_timeout: seconds a publish may take, reconnects included, before
            `BrokerUnavailable`.
        reconnect_interval: seconds between two attempts to reconnect.
        connect_timeout: seconds the first connection may take (default 10): a broker that
            does not answer by then is `BrokerUnavailable` when the bus starts, never an
            endless retry. Reconnecting after a lost connection has no such bound.
        management_url: base URL of the management HTTP API; default ``http://<host>:15672``
            (``https://<host>:15671`` for ``amqps://``), logging in with the AMQP URL's user
            and password unless the management URL carries its own. Used for rates,
            in-flight counts of other processes, group discovery and unbinding stale
            patterns; without it stats fall back to AMQP counters (one warning says so).
        replay_stream: keep the bus's events in a stream (``<bus>.:log``, kept for the bus's
            ``retention``) so ``bus.replay`` works (default True); each publish then waits
            for a second confirm, the stream's. False: no stream, ``replay`` is
            `NotSupported`.

    Raises:
        ConfigError: a value of the wrong kind, naming the option.
    """

    queue_type: str = "classic"
    partitions: int = 4
    publish_timeout: float = 30.0
    reconnect_interval: float = 1.0
    connect_timeout: float = 10.0
    management_url: str | None = None
    replay_stream: bool = True

    def __post_init__(self) -> None:
        if self.queue_type not in ("classic", "quorum"):
            raise ConfigError(f"queue_type must be 'classic' or 'quorum', not {self.queue_type!r}")
        value = self.partitions
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"partitions must be a positive integer, not {value!r}")
        for name in ("publish_timeout", "reconnect_interval", "connect_timeout"):
            object.__setattr__(self, name, _positive_seconds(name, getattr(self, name)))
        if not isinstance(self.replay_stream, bool):
            raise ConfigError(f"replay_stream must be True or False, not {self.replay_stream!r}")
        management = self.management_url
        object.__setattr__(self, "management_url", str(management) if management else None)
