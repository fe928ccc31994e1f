"""The stop signals (SIGTERM, SIGINT) as the worker and the supervisor of ``tidings run``
receive them: in the event loop, with a way to undo."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

__all__ = ["STOP_SIGNALS", "on_stop_signals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signals(handler: Callable[[int], None]) -> Callable[[], None]:
    """Call `handler(signum)` in the loop on SIGTERM and SIGINT; return the undo."""
    loop = asyncio.get_running_loop()
    try:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, handler, int(sig))
    except NotImplementedError:  # pragma: no cover - Windows event loops
        previous = {
            sig: signal.signal(sig, lambda s, _f: loop.call_soon_threadsafe(handler, s))
            for sig in STOP_SIGNALS
        }

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def remove() -> None:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    return remove
