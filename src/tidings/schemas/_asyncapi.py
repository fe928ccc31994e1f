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


def _channel_binding(bus_name: str) -> dict[str, Any]:
    exchange = {"name": bus_name, "type": "topic", "durable": True, "autoDelete": False}
    return {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": _AMQP}}


def _message(cls: type[Message], payload: Any) -> dict[str, Any]:
    return {
        "name": cls.__message_type__,
        "title": f"{cls.__name__} (version {cls.__message_version__})",
        "summary": (cls.__doc__ or "").strip().split("\n")[0] or cls.__name__,
        "contentType": "application/json",
        "payload": payload,
        "x-tidings-kind": cls.__message_kind__,
        "x-tidings-version": cls.__message_version__,
    }


class _Document:
    """The parts of the document, filled in by the catalog of one bus."""

    def __init__(self, bus: Any) -> None:
        self.bus_name: str = bus.name
        self.catalog = catalog_of(bus)
        self.classes = list(self.catalog.messages.values())
        self.schemas: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    def payloads(self) -> None:
        """The messages and their payloads; every nested model once, under schemas."""
        if not self.classes:
            return
        keyed, defs = models_json_schema(
            [(c, "validation") for c in self.classes],
            ref_template="#/components/schemas/{model}",
        )
        self.schemas.update(defs.get("$defs", {}))
        for cls in self.classes:
            self.messages[_message_key(cls)] = _message(cls, keyed[(cls, "validation")])

    def channel(self, address: str) -> str:
        """The key of the channel of `address`, made on first use."""
        key = _id(address)
        if key not in self.channels:
            known = [c for c in self.classes if c.__message_type__ == address]
            self.channels[key] = {
                "address": address,
                "messages": {
                    _message_key(c): {"$ref": f"#/components/messages/{_message_key(c)}"}
                    for c in known
                },
                "bindings": _channel_binding(self.bus_name),
            }
        return key

    def receive(self) -> None:
        """A receive operation per group and channel its patterns match."""
        known = sorted({c.__message_type__ or "" for c in self.classes})
        for group, handlers in self.catalog.received.items():
            for pattern, model in handlers:
                types = [t for t in known if matches(pattern, t)]
                if model is not None and model.__message_type__ not in types:
                    types.append(model.__message_type__ or "")
                for address in types or [pattern]:
                    key = self.channel(address)
                    self.operations[_id(f"{group}.receive.{address}")] = {
                        "action": "receive",
                        "channel": {"$ref": f"#/channels/{key}"},
                        "summary": f"group {group} handles {address} (pattern {pattern})",
                        "messages": [
                            {"$ref": f"#/channels/{key}/messages/{m}"}
                            for m in self.channels[key]["messages"]
                        ],
                        "bindings": {"amqp": {"ack": True, "bindingVersion": _AMQP}},
                        "x-tidings-group": group,
                    }

    def send(self) -> None:
        """A send operation per class of ``bus.publishes``."""
        for cls in self.catalog.sent:
            address = cls.__message_type__ or ""
            key = self.channel(address)
            amqp = {"deliveryMode": 2, "mandatory": True, "bindingVersion": _AMQP}
            self.operations[_id(f"{self.bus_name}.send.{address}")] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{key}"},
                "summary": f"publishes {address}",
                "messages": [{"$ref": f"#/channels/{key}/messages/{_message_key(cls)}"}],
                "bindings": {"amqp": amqp},
            }


def asyncapi_document(
    bus: Any, *, title: str | None = None, version: str = "1.0.0"
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of `bus` (a `tidings.Bus`) as a dict, ready for JSON or
    YAML (see the module's docstring for what it holds).

    Args:
        bus: the bus, as the application defines it (it is not started).
        title: ``info.title``; the bus's name by default.
        version: ``info.version``, the version of the application's API.
    """
    parts = _Document(bus)
    parts.payloads()
    parts.receive()
    parts.send()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title or bus.name,
            "version": version,
            "description": f"Messages of the tidings bus {bus.name!r} (tidings {__version__}).",
        },
        "defaultContentType": "application/json",
        "servers": {"broker": _server(bus.url)},
        "channels": dict(sorted(parts.channels.items())),
        "operations": dict(sorted(parts.operations.items())),
        "components": {
            "messages": parts.messages,
            "schemas": dict(sorted(parts.schemas.items())),
        },
    }
