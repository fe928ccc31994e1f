"""The shop's services as one runnable bus: ``tidings run tidings.examples.shop.worker:bus``.

The URL comes from ``--url`` or ``TIDINGS_URL``; the seed and time scale from the
environment `tidings.examples.plan.Settings.to_env` writes, the bus name and dedupe store
from the one `tidings.examples.plan.bus_options_to_env` writes (the demo sets both).
Run one group per process with ``--group payment``.
"""

from __future__ import annotations

from ..plan import Settings, bus_options_from_env
from . import create_bus

__all__ = ["bus"]

bus = create_bus(None, Settings.from_env(), **bus_options_from_env())
