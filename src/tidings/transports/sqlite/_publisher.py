"""Publishing to the embedded broker: the publishes of one event-loop turn commit together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .._futures import relay
from .._message import OutgoingMessage
from ._ops import PublishOp
from ._store import WriterThread

__all__ = ["PublishQueue"]


class PublishQueue:
    """Publishes of one event-loop turn go to the writer as one `PublishOp`: one queued job
    (and one wake-up of the writer thread) for a burst of concurrent `publish` calls instead
    of one each. Every caller still gets its own future, resolved by that commit. Should the
    joint op fail, each caller's messages are tried again on their own, so one bad publish
    does not fail the others."""

    def __init__(self, writer: WriterThread) -> None:
        self._writer = writer
        self._pending: list[tuple[list[OutgoingMessage], asyncio.Future[list[bool]]]] = []

    def publish(self, messages: Sequence[OutgoingMessage]) -> asyncio.Future[list[bool]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._submit)
        self._pending.append((list(messages), future))
        return future

    def _submit(self) -> None:
        pending, self._pending = self._pending, []
        if len(pending) == 1:
            self._one(*pending[0])
            return
        joint = [m for messages, _ in pending for m in messages]
        try:
            committed = self._writer.submit(PublishOp(joint))
        except BaseException as exc:
            for _, future in pending:
                _fail(future, exc)
            return
        committed.add_done_callback(lambda done: self._split(done, pending))

    def _one(self, messages: list[OutgoingMessage], future: asyncio.Future[list[bool]]) -> None:
        try:
            committed = self._writer.submit(PublishOp(messages))
        except BaseException as exc:
            _fail(future, exc)
            return
        committed.add_done_callback(lambda done: relay(done, future))

    def _split(
        self,
        done: asyncio.Future[Any],
        pending: list[tuple[list[OutgoingMessage], asyncio.Future[list[bool]]]],
    ) -> None:
        if done.cancelled() or done.exception() is not None:
            for messages, future in pending:
                if not future.done():
                    self._one(messages, future)
            return
        routed: list[bool] = done.result()
        start = 0
        for messages, future in pending:
            end = start + len(messages)
            if not future.done():
                future.set_result(routed[start:end])
            start = end


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
