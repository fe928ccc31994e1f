"""The signals of ``tidings run`` as its worker and its supervisor receive them: in the
event loop, with a way to undo.

SIGTERM and SIGINT ask to stop (drain). `FORCE_SIGNAL` is how a supervisor tells its
workers to stop at once when it is asked to stop a second time: a worker it started takes
any number of SIGTERM/SIGINT as one request to drain, since a service manager (systemd) or
a terminal may signal every process of the service as well as the supervisor forwarding it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence

__all__ = ["FORCE_SIGNAL", "STOP_SIGNALS", "on_signals", "on_stop_signals"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# SIGUSR1 where there is one (POSIX); Windows has no such signal, nor process groups to
# signal as a whole.
FORCE_SIGNAL: signal.Signals = getattr(signal, "SIGUSR1", signal.SIGTERM)


def on_signals(
    signals: Sequence[signal.Signals], handler: Callable[[int], None]
) -> Callable[[], None]:
    """Call `handler(signum)` in the loop on each of `signals`; return the undo."""
    loop = asyncio.get_running_loop()
    try:
        for sig in signals:
            loop.add_signal_handler(sig, handler, int(sig))
    except NotImplementedError:  # pragma: no cover - Windows event loops
        previous = {
            sig: signal.signal(sig, lambda s, _f: loop.call_soon_threadsafe(handler, s))
            for sig in signals
        }

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return remove


def on_stop_signals(handler: Callable[[int], None]) -> Callable[[], None]:
    """Call `handler(signum)` in the loop on SIGTERM and SIGINT; return the undo."""
    return on_signals(STOP_SIGNALS, handler)
