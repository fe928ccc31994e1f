"""Broker errors translated into ours: one clear line, with the URL's password masked and
what the user can do about it."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import aiormq.exceptions

from ..._exceptions import BrokerUnavailable, ConfigError, MessageTooLarge, TidingsError
from .._urls import mask_url

__all__ = ["HASH_PLUGIN", "INEQUIVALENT", "reason", "translate"]

HASH_PLUGIN = "rabbitmq_consistent_hash_exchange"
"""The plugin behind ordered groups' ``x-consistent-hash`` exchanges (it ships with RabbitMQ,
disabled)."""

INEQUIVALENT = re.compile(r"inequivalent arg '([^']+)' for (queue|exchange) '([^']+)'")


def _vhost(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def reason(exc: BaseException) -> str:
    """The first non-empty line of an error's text (a broker's reply text, say)."""
    words = [a for a in exc.args if isinstance(a, str)]
    text = words[-1] if words else str(exc)
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def translate(exc: BaseException, url: str, doing: str) -> TidingsError:
    """One clear line for an aio-pika/aiormq/socket error, with the URL's password masked."""
    where = mask_url(url)
    text = reason(exc)
    if isinstance(exc, TidingsError):
        return exc
    if "unknown exchange type" in text and "x-consistent-hash" in text:
        return ConfigError(
            f"{doing} on {where}: ordered groups need the RabbitMQ consistent-hash exchange "
            f"plugin: run rabbitmq-plugins enable {HASH_PLUGIN}"
        )
    if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed):
        found = INEQUIVALENT.search(text)
        if found:
            arg, kind, name = found.groups()
            return ConfigError(
                f"{kind} {name!r} on {where} already exists with a different {arg!r} "
                f"({text.split(': ', 1)[-1]}); delete it or declare it with the same {arg}"
            )
        if "message size" in text or "max size" in text:
            return MessageTooLarge(f"{doing} on {where}: the broker refused it: {text}")
        return ConfigError(f"{doing} on {where}: the broker refused it: {text}")
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError | PermissionError) or (
        "ACCESS_REFUSED" in text or "authentication" in text.lower()
    ):
        return ConfigError(
            f"RabbitMQ at {where} refused the login: check the user name and password in the URL"
        )
    # The broker answers Connection.Open with Connection.Close when the virtual host does
    # not exist or the user may not use it (aiormq reports it as an unexpected frame).
    refused_open = "Connection.OpenOk" in text and "Connection.Close" in text
    if refused_open or "NOT_ALLOWED" in text or "vhost" in text.lower():
        return ConfigError(
            f"RabbitMQ at {where} refused the virtual host {_vhost(url)!r}: it does not exist "
            "or the user may not access it; create it (rabbitmqctl add_vhost) or fix the "
            "path of the URL"
        )
    if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
        return ConfigError(f"{doing} on {where}: {text}; declare the groups first")
    if isinstance(exc, OSError | ConnectionError | aiormq.exceptions.AMQPConnectionError):
        return BrokerUnavailable(f"cannot reach RabbitMQ at {where} ({doing}): {text}")
    return BrokerUnavailable(f"{doing} on {where} failed: {type(exc).__name__}: {text}")
