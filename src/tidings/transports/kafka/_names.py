"""Topic names of one bus, delay tiers, and topic patterns for subscriptions.

Every topic of a bus starts with the bus name (its namespace):

- ``<bus>.<event type>``: the events of one type (``tidings.order.placed``); a group
  subscribes to the ones its patterns match, by a regular expression.
- ``<bus>__bindings``: the groups and their patterns (compacted, keyed by group): what makes
  a publish that no group takes `Unroutable`.
- ``<bus>__<group>.commands``: messages sent to one group (commands, replays).
- ``<bus>__<group>.retry-<tier>``: retries and delayed messages of one group, one topic per
  delay tier, so a short delay never waits behind a long one.
- ``<bus>__<group>.dlq``: the group's dead letters (compacted, keyed by entry id).
- ``<bus>__<group>.attempts``: the attempt counts of an ordered group's waiting retries
  (compacted, keyed by partition), so a retry keeps its count across a restart.
- ``<bus>__replies.<id>``: one bus instance's reply inbox (request/reply).

Event topics are ``<bus>.`` followed by the type; no internal topic has a dot right after
the bus name, so a pattern never subscribes a group to another group's topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..._exceptions import ConfigError

__all__ = ["TIERS", "Names", "pick_tier", "topic_regex"]

_LEGAL = re.compile(r"^[A-Za-z0-9._-]+$")
_MAX_TOPIC = 249

TIERS: tuple[tuple[str, float], ...] = (
    ("50ms", 0.05),
    ("200ms", 0.2),
    ("1s", 1.0),
    ("5s", 5.0),
    ("20s", 20.0),
    ("1m", 60.0),
    ("5m", 300.0),
    ("20m", 1200.0),
    ("1h", 3600.0),
)
"""Delay tiers: one retry topic per tier and group. A consumer waits for the head of a tier's
partition to come due, so the delays in one topic are close to each other."""


def pick_tier(delay: float) -> str:
    """The smallest tier at least as long as `delay` (the longest for longer delays): a
    message waits for its own due time, so it is held back by at most one tier's width."""
    for name, seconds in TIERS:
        if delay <= seconds + 1e-9:
            return name
    return TIERS[-1][0]


def _check(topic: str, what: str) -> str:
    if not _LEGAL.match(topic) or len(topic) > _MAX_TOPIC:
        raise ConfigError(
            f"{what} cannot name a Kafka topic ({topic!r}): Kafka allows letters, digits, "
            f"'.', '_' and '-', at most {_MAX_TOPIC} characters"
        )
    return topic


def topic_regex(bus: str, pattern: str) -> str:
    """A regular expression (unanchored) matching the event topics of `bus` whose type
    matches the AMQP topic `pattern` (``*`` one word, ``#`` zero or more words)."""
    parts = [re.escape(bus)]
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:\.[^.]+)*")
        elif word == "*":
            parts.append(r"\.[^.]+")
        else:
            parts.append(r"\." + re.escape(word))
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Names:
    """Topic names of one bus (`bus` is the bus name)."""

    bus: str

    def __post_init__(self) -> None:
        _check(self.bus, f"the bus name {self.bus!r}")

    @property
    def bindings(self) -> str:
        """The compacted topic of the groups' bindings."""
        return f"{self.bus}__bindings"

    def event(self, type_: str) -> str:
        """The topic of one event type."""
        return _check(f"{self.bus}.{type_}", f"the event type {type_!r}")

    def event_type(self, topic: str) -> str | None:
        """The event type of an event topic; None for any other topic."""
        prefix = self.bus + "."
        return topic[len(prefix) :] if topic.startswith(prefix) else None

    def group_prefix(self, group: str) -> str:
        return _check(f"{self.bus}__{group}", f"the group name {group!r}")

    def commands(self, group: str) -> str:
        return f"{self.group_prefix(group)}.commands"

    def retry(self, group: str, tier: str) -> str:
        return f"{self.group_prefix(group)}.retry-{tier}"

    def retries(self, group: str) -> list[str]:
        return [self.retry(group, tier) for tier, _ in TIERS]

    def dlq(self, group: str) -> str:
        return f"{self.group_prefix(group)}.dlq"

    def attempts(self, group: str) -> str:
        return f"{self.group_prefix(group)}.attempts"

    def consumer_group(self, group: str) -> str:
        """The Kafka consumer group of a tidings group."""
        return self.group_prefix(group)

    def replies(self, inbox: str) -> str:
        return f"{self.bus}__replies.{inbox}"

    def is_retry(self, topic: str, group: str) -> bool:
        return topic.startswith(self.group_prefix(group) + ".retry-")

    def subscription(self, group: str, patterns: tuple[str, ...]) -> str:
        """The anchored regular expression a group's consumer subscribes with: its event
        topics, its command topic and its retry topics."""
        own = re.escape(self.group_prefix(group))
        events = "|".join(topic_regex(self.bus, p) for p in patterns)
        mine = rf"{own}\.commands|{own}\.retry-[0-9a-z]+"
        return f"^(?:{events}|{mine})$" if events else f"^(?:{mine})$"
