"""Seeded, per-event decisions: which payments decline, which analytics calls fail.

A decision is a pure function of the seed and the event's identity (an order id, an event
id, an attempt number), never of a shared random stream, so running the same scenario
with more workers, in another order, or after a crash makes exactly the same decisions.
Tests use the same functions to compute the expected outcome of a run independently of
the run's own counting.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Settings", "bus_options_from_env", "bus_options_to_env", "chance", "happens"]

_SEED_ENV = "TIDINGS_EXAMPLE_SEED"
_SCALE_ENV = "TIDINGS_EXAMPLE_TIME_SCALE"
_LEASE_ENV = "TIDINGS_EXAMPLE_LEASE"
_BUS_OPTIONS_ENV = "TIDINGS_EXAMPLE_BUS_OPTIONS"


def chance(seed: int, *parts: object) -> float:
    """A number in [0, 1) determined by `seed` and `parts` alone (SHA-256 based)."""
    text = "\x00".join([str(seed), *map(str, parts)]).encode()
    digest = hashlib.sha256(text).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def happens(share: float, seed: int, *parts: object) -> bool:
    """True for about `share` of all distinct (`seed`, `parts`)."""
    return chance(seed, *parts) < share


@dataclass(frozen=True, slots=True)
class Settings:
    """What a scenario's services need besides the bus URL.

    Attributes:
        seed: the seed of every simulated failure.
        time_scale: multiplies every simulated duration (the 2 s e-mail, a payment call);
            tests use a small one so they run fast.
        lease: seconds a delivery stays claimed by a worker that stopped answering (the
            embedded broker renews it while the handler runs); short in the demo, so a
            killed worker's deliveries come back quickly.
    """

    seed: int = 7
    time_scale: float = 1.0
    lease: float = 30.0

    def seconds(self, nominal: float) -> float:
        """`nominal` seconds of simulated work, scaled."""
        return nominal * self.time_scale

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, for worker processes."""
        return {
            _SEED_ENV: str(self.seed),
            _SCALE_ENV: repr(self.time_scale),
            _LEASE_ENV: repr(self.lease),
        }

    @classmethod
    def from_env(cls) -> Settings:
        """The settings a parent process passed with `to_env` (defaults otherwise)."""
        default = cls()
        return cls(
            seed=int(os.environ.get(_SEED_ENV, default.seed)),
            time_scale=float(os.environ.get(_SCALE_ENV, default.time_scale)),
            lease=float(os.environ.get(_LEASE_ENV, default.lease)),
        )


def bus_options_to_env(options: Mapping[str, Any]) -> dict[str, str]:
    """`Bus` keyword options (``name``, ``dedupe``, transport options) as an environment
    variable, for worker processes: in the environment, not on a command line where a
    password in a dedupe URL would show in ``ps``."""
    return {_BUS_OPTIONS_ENV: json.dumps(dict(options))} if options else {}


def bus_options_from_env() -> dict[str, Any]:
    """The `Bus` options a parent process passed with `bus_options_to_env` (none otherwise)."""
    text = os.environ.get(_BUS_OPTIONS_ENV)
    if not text:
        return {}
    options = json.loads(text)
    return dict(options) if isinstance(options, dict) else {}
