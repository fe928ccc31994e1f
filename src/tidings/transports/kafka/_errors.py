"""Driver errors translated into ours: one clear line naming the bootstrap servers (as given,
password masked) and what the user can do about it."""

from __future__ import annotations

from aiokafka import errors  # type: ignore[import-untyped]

from ..._exceptions import BrokerUnavailable, MessageTooLarge, TidingsError
from .._urls import mask_url

__all__ = ["translate"]


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else type(exc).__name__


def translate(exc: BaseException, url: str, doing: str) -> TidingsError:
    """One clear line for an aiokafka or socket error."""
    if isinstance(exc, TidingsError):
        return exc
    where = mask_url(url)
    if isinstance(exc, errors.MessageSizeTooLargeError):
        return MessageTooLarge(f"{doing} on {where}: the broker refused it: {_reason(exc)}")
    if isinstance(exc, errors.KafkaConnectionError | OSError | errors.KafkaTimeoutError):
        return BrokerUnavailable(
            f"cannot reach Kafka at {where} ({doing}): {_reason(exc)}; check that the "
            "bootstrap servers in the URL are up and reachable"
        )
    return BrokerUnavailable(f"{doing} on {where} failed: {type(exc).__name__}: {_reason(exc)}")
