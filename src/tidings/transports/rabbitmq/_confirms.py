"""Publisher confirms on an aiormq channel, settled without a callback per publish.

`_aiormq` registers each publish's outcome future as the channel's confirmation for its
delivery tag, as ``aiormq.Channel.basic_publish`` registers its own. aiormq would then settle
a ``multiple`` confirm one tag per scheduled callback, and each publish would carry a done
callback to drop its message id from ``message_id_delivery_tag`` (how aiormq finds the
publish a ``Basic.Return`` is about): three event-loop callbacks a publish. `watch` replaces,
on a channel tidings publishes on, the confirm handler with `_on_confirm`, which settles every
tag a frame covers at once and drops its message id then (a return always comes before its
publish's confirm). aiormq's own publishes on such a channel are settled the same way (their
own done callbacks still run).

`watch` also fails the outcomes still unconfirmed when the channel closes (aiormq fails only
its own futures), and keeps a return whose publisher gave up (its outcome cancelled) from
closing the channel: aiormq would set an exception on that cancelled future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import Any

import aiormq
from pamqp import commands as spec

__all__ = ["register", "unregister", "watch"]

logger = logging.getLogger(__name__)

_IDS = "_tidings_message_ids"
"""The channel attribute holding delivery tag -> message id of our registered publishes (set
by `watch`: a channel that has it is watched)."""


def watch(channel: Any) -> None:
    """Once per channel: settle its confirms with `_on_confirm`, guard its returns, and fail
    the outcomes it still owes a confirm when it closes."""
    if hasattr(channel, _IDS):
        return
    setattr(channel, _IDS, {})
    channel._on_confirm_frame = partial(_on_confirm, channel)
    channel._on_return_frame = partial(_on_return, channel, channel._on_return_frame)
    channel.closing.add_done_callback(partial(_closed, channel))


def register(channel: Any, message_id: str, outcome: asyncio.Future[Any]) -> int:
    """Number one publish on `channel` (`watch`\\ ed) and register `outcome` as its
    confirmation; returns its delivery tag."""
    channel.delivery_tag += 1
    tag: int = channel.delivery_tag
    channel.confirmations[tag] = outcome
    channel.message_id_delivery_tag[message_id] = tag
    getattr(channel, _IDS)[tag] = message_id
    return tag


def unregister(channel: Any, tags: list[int]) -> None:
    """Undo `register` for publishes never handed to the writer (the broker has not seen
    these tags, the last ones taken; their outcomes are failed by the caller)."""
    for tag in reversed(tags):
        channel.confirmations.pop(tag, None)
    _forget(channel, tags)
    channel.delivery_tag -= len(tags)


def _forget(channel: Any, tags: list[int]) -> None:
    """Drop the message id -> delivery tag entries of `tags` (aiormq's, to match returns)."""
    ids, tag_of = getattr(channel, _IDS), channel.message_id_delivery_tag
    for tag in tags:
        message_id = ids.pop(tag, None)
        if message_id is not None and tag_of.get(message_id) == tag:
            del tag_of[message_id]


async def _on_confirm(channel: Any, frame: spec.Basic.Ack | spec.Basic.Nack) -> None:
    confirmations = channel.confirmations
    last = frame.delivery_tag
    if last not in confirmations:
        logger.debug("confirm %r for no publish on channel %s", frame, channel.number)
        return
    if getattr(frame, "multiple", False):
        # Not in tag order: aiormq moves a returned publish's entry to the end.
        tags = [tag for tag in confirmations if tag <= last]
    else:
        tags = [last]
    _forget(channel, tags)
    ack = isinstance(frame, spec.Basic.Ack)
    for tag in tags:
        confirmation = confirmations.pop(tag)
        if isinstance(confirmation, aiormq.channel.Returning) or confirmation.done():
            continue  # returned (its outcome is failed already), or given up
        if ack:
            confirmation.set_result(frame)
        else:
            confirmation.set_exception(aiormq.exceptions.DeliveryError(None, frame))


async def _on_return(channel: Any, original: Any, frame: spec.Basic.Return) -> None:
    # An outcome cancelled (its publisher gave up) cannot take aiormq's PublishError; the
    # entry is marked returned already, so nothing is lost but the error.
    with contextlib.suppress(asyncio.InvalidStateError):
        await original(frame)


def _closed(channel: Any, closing: asyncio.Future[Any]) -> None:
    reason: BaseException | None = None
    if not closing.cancelled():
        reason = closing.exception()
    if reason is None:
        reason = aiormq.exceptions.ChannelInvalidStateError(f"{channel!r} closed")
    for confirmation in list(channel.confirmations.values()):
        if isinstance(confirmation, aiormq.channel.Returning):
            continue  # its outcome was failed when it came back
        if isinstance(confirmation, asyncio.Future) and not confirmation.done():
            confirmation.set_exception(reason)
