"""Small helpers for the futures the transports hand to their callers."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["relay"]


def relay(done: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    """Copy the outcome of `done` (result, exception or cancellation) to `target`, unless
    `target` is settled already (its caller stopped waiting). Use as a done callback."""
    if target.done():
        return
    if done.cancelled():
        target.cancel()
    elif (exc := done.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(done.result())
