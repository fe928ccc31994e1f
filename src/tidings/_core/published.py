"""The messages a bus declares it publishes (`Bus.publishes`), for schema tools.

Handlers say what a bus receives; nothing in the code says what it sends until it sends
it. ``bus.publishes(OrderPlaced, ChargeCard)`` declares it, so ``tidings schema export``
and ``tidings asyncapi`` can describe the messages a service produces. Kept beside the bus,
not on it, so the declaration costs the `Bus` nothing.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from .._exceptions import ConfigError
from .messages import Message

__all__ = ["declare_published", "published_by"]

_PUBLISHED: weakref.WeakKeyDictionary[Any, list[type[Message]]] = weakref.WeakKeyDictionary()


def declare_published(bus: Any, message_classes: Iterable[Any]) -> None:
    """Record `message_classes` (`Event` or `Command` classes with a type) as published by
    `bus`; repeating one is harmless.

    Raises:
        ConfigError: something that is not a message class with a type.
    """
    classes = list(message_classes)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Message)):
            raise ConfigError(
                f"publishes() takes Event and Command classes, not {cls!r}"
                + (" (pass the class, not an instance)" if isinstance(cls, Message) else "")
            )
        if cls.__message_type__ is None:
            raise ConfigError(
                f"publishes(): {cls.__name__} has no message type: declare it as "
                f'class {cls.__name__}(Event, type="name.verb")'
            )
    known = _PUBLISHED.setdefault(bus, [])
    known.extend(c for c in classes if c not in known)


def published_by(bus: Any) -> list[type[Message]]:
    """The classes declared with ``bus.publishes(...)``, in declaration order."""
    return list(_PUBLISHED.get(bus, ()))
