"""The messages a bus knows: those its handlers take and those it declares it publishes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._core.messages import Message
from .._core.published import published_by
from .._core.upcasting import version_of
from .._exceptions import ConfigError

__all__ = ["Catalog", "catalog_of", "json_schema_of"]


@dataclass
class Catalog:
    """What one bus receives and sends.

    Attributes:
        messages: every message class by ``(type, version)``, handled or published.
        received: per group, its handlers' ``(pattern, model class or None)``.
        sent: the classes of ``bus.publishes(...)``.
    """

    messages: dict[tuple[str, int], type[Message]] = field(default_factory=dict)
    received: dict[str, list[tuple[str, type[Message] | None]]] = field(default_factory=dict)
    sent: list[type[Message]] = field(default_factory=list)


def _key(cls: type[Message]) -> tuple[str, int]:
    return cls.__message_type__ or "", cls.__message_version__


def catalog_of(bus: Any) -> Catalog:
    """The `Catalog` of `bus` (a `tidings.Bus`), from its groups and its ``publishes``."""
    found = Catalog()
    for name, group in sorted(bus.groups.items()):
        handlers = found.received.setdefault(name, [])
        for handler in group.handlers:
            model = handler.model if version_of(handler.model) is not None else None
            handlers.append((handler.pattern, model))
            if model is not None:
                _add(found.messages, model)
    for cls in published_by(bus):
        found.sent.append(cls)
        _add(found.messages, cls)
    found.messages = dict(sorted(found.messages.items()))
    return found


def _add(messages: dict[tuple[str, int], type[Message]], cls: type[Message]) -> None:
    """Add `cls`; refuse two classes with one type and version but different schemas."""
    key = _key(cls)
    known = messages.setdefault(key, cls)
    if known is not cls and _shape(known) != _shape(cls):
        raise ConfigError(
            f"two different schemas for {key[0]!r} version {key[1]}: "
            f"{known.__module__}.{known.__qualname__} and {cls.__module__}.{cls.__qualname__} "
            "(give the changed one a new version)"
        )


def _shape(cls: type[Message]) -> dict[str, Any]:
    """The schema of `cls` but for its title (the class name)."""
    schema = json_schema_of(cls)
    schema.pop("title", None)
    return schema


def json_schema_of(cls: type[Message]) -> dict[str, Any]:
    """The JSON Schema of the data of `cls` (pydantic, validation mode: a field with a
    default is not required), nested models under ``$defs``."""
    return cls.model_json_schema(mode="validation")
