"""An AsyncAPI 3.0.0 document of a bus: its channels, operations, messages and bindings.

- a channel per message type the bus handles or publishes (its address is the type, the
  routing key), and one per handler pattern that names no known type (``order.*``);
- a ``receive`` operation per group and channel (the group's handlers), a ``send``
  operation per class declared with ``bus.publishes``;
- a message per type and version, its payload the data's JSON Schema, the nested models
  under ``components.schemas`` (every ``$ref`` resolves inside the document);
- AMQP bindings: the channel is a routing key on the bus's topic exchange, a receiving
  group is a durable queue, publishing is mandatory and persistent.

The payload is the event's data; on the wire it travels inside a CloudEvents envelope (see
the wire format reference), whose ``type`` is the channel's address and whose
``dataversion`` is the message's version.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic.json_schema import models_json_schema

from .. import __version__
from .._core.messages import Message
from ..transports import mask_url
from ..transports._routing import matches
from ._catalog import catalog_of

__all__ = ["asyncapi_document"]

_AMQP = "0.3.0"
_UNSAFE = re.compile(r"[^\w.\-]")


def _id(text: str) -> str:
    """A component key (``^[\\w\\d.\\-_]+$``) for `text`: ``*`` and ``#`` spelled out."""
    return _UNSAFE.sub("_", text.replace("*", "star").replace("#", "hash"))


def _message_key(cls: type[Message]) -> str:
    return _id(f"{cls.__message_type__}.v{cls.__message_version__}")


def _server(url: str) -> dict[str, Any]:
    parts = urlsplit(mask_url(url))
    host = parts.hostname or "localhost"
    if parts.port:
        host = f"{host}:{parts.port}"
    server: dict[str, Any] = {"host": host, "protocol": parts.scheme or "tidings"}
    if parts.path and parts.path != "/":
        server["pathname"] = parts.path if parts.path.startswith("/") else f"/{parts.path}"
    return server


def _channel_binding(address: str, bus_name: str) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {"name": bus_name, "type": "topic", "durable": True, "autoDelete": False},
            "bindingVersion": _AMQP,
        }
    }


def asyncapi_document(
    bus: Any, *, title: str | None = None, version: str = "1.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of `bus` (a `tidings.Bus`) as a dict, ready for JSON or
    YAML (see the module's docstring for what it holds)."""
    cat = catalog_of(bus)
    classes = list(cat.messages.values())
    schemas: dict[str, Any] = {}
    refs: dict[type[Message], Any] = {}
    if classes:
        keyed, defs = models_json_schema(
            [(c, "validation") for c in classes], ref_template="#/components/schemas/{model}"
        )
        schemas.update(defs.get("$defs", {}))
        refs = {c: keyed[(c, "validation")] for c in classes}
    messages = {
        _message_key(c): {
            "name": c.__message_type__,
            "title": f"{c.__name__} (version {c.__message_version__})",
            "summary": (c.__doc__ or "").strip().split("\n")[0] or c.__name__,
            "contentType": "application/json",
            "payload": refs[c],
            "x-tidings-kind": c.__message_kind__,
            "x-tidings-version": c.__message_version__,
        }
        for c in classes
    }
    channels: dict[str, Any] = {}

    def channel(address: str) -> str:
        key = _id(address)
        if key not in channels:
            known = [c for c in classes if c.__message_type__ == address]
            channels[key] = {
                "address": address,
                "messages": {
                    _message_key(c): {"$ref": f"#/components/messages/{_message_key(c)}"}
                    for c in known
                },
                "bindings": _channel_binding(address, bus.name),
            }
        return key

    operations: dict[str, Any] = {}
    for group, handlers in cat.received.items():
        for pattern, model in handlers:
            types = sorted(
                {
                    c.__message_type__ or ""
                    for c in classes
                    if matches(pattern, c.__message_type__ or "")
                }
            )
            if model is not None and model.__message_type__ not in types:
                types.append(model.__message_type__ or "")
            for address in types or [pattern]:
                key = channel(address)
                operations[_id(f"{group}.receive.{address}")] = {
                    "action": "receive",
                    "channel": {"$ref": f"#/channels/{key}"},
                    "summary": f"group {group} handles {address} (pattern {pattern})",
                    "messages": [
                        {"$ref": f"#/channels/{key}/messages/{m}"}
                        for m in channels[key]["messages"]
                    ],
                    "bindings": {
                        "amqp": {"ack": True, "bindingVersion": _AMQP},
                    },
                    "x-tidings-group": group,
                }
    for cls in cat.sent:
        address = cls.__message_type__ or ""
        key = channel(address)
        operations[_id(f"{bus.name}.send.{address}")] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"publishes {address}",
            "messages": [{"$ref": f"#/channels/{key}/messages/{_message_key(cls)}"}],
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": _AMQP}},
        }
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": title or bus.name,
            "version": version,
            "description": f"Messages of the tidings bus {bus.name!r} (tidings {__version__}).",
        },
        "defaultContentType": "application/json",
        "servers": {"broker": _server(bus.url)},
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }
    return document
