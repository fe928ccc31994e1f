"""The sign-up services as one runnable bus:
``tidings run tidings.examples.signup.worker:bus`` (``--group email`` for one of them)."""

from __future__ import annotations

from ..plan import Settings, bus_options_from_env
from . import create_bus

__all__ = ["bus"]

bus = create_bus(None, Settings.from_env(), **bus_options_from_env())
