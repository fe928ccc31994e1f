"""Typed messages: `Event` (a fact, to every interested group) and `Command` (to one group).

Both are pydantic v2 models. The message type and schema version are class keywords, not
fields, so a user's model may have fields named ``id``, ``type`` or ``time``::

    class OrderPlaced(Event, type="order.placed", version=1):
        order_id: str
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .._exceptions import ConfigError
from ..transports._routing import validate_pattern

__all__ = ["Command", "Event", "Message", "message_class", "message_type_of"]

# Every message class defined, by type: the reply to `Bus.request` names only its type and
# version, and is decoded into the class this process knows for them. Weak references, so a
# class defined in a test and dropped does not linger.
_CLASSES: dict[str, list[weakref.ref[type[Message]]]] = {}


class Message(BaseModel):
    """Common base of `Event` and `Command`; not used directly."""

    model_config = ConfigDict(frozen=False, extra="ignore")

    __message_type__: ClassVar[str | None] = None
    __message_version__: ClassVar[int] = 1
    __message_kind__: ClassVar[str] = "message"

    def __init_subclass__(
        cls, *, type: str | None = None, version: int | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if type is not None:
            if not type or "*" in type or "#" in type:
                raise ConfigError(f"{cls.__name__}: message type {type!r} must be a dotted name")
            validate_pattern(type)
            cls.__message_type__ = type
        if version is not None:
            if not isinstance(version, int) or version < 1:
                raise ConfigError(f"{cls.__name__}: version must be a positive integer")
            cls.__message_version__ = version
        if type is not None or version is not None:
            _remember(cls)


class Event(Message):
    """A fact in past tense (``order.placed``), published to every group interested.

    An event is a pydantic v2 model whose class keywords give its type and schema version:

    ```python
    class OrderPlaced(Event, type="order.placed", version=1):
        order_id: str
        total: Decimal
    ```

    The type is the routing key that subscription patterns match: dotted words, without
    ``*`` or ``#``. `version` (default 1) travels as the ``dataversion`` attribute. The
    CloudEvents envelope is not made of fields of the model, so a model may have fields
    named ``id``, ``type`` or ``time``. Unknown fields in incoming data are ignored.

    Raises:
        ConfigError: (when the class is defined) a type with wildcards or empty words, or a
            version that is not a positive integer.
    """

    __message_kind__: ClassVar[str] = "event"


class Command(Message):
    """A request to one service (``payment.charge``), sent to one group with `Bus.send`.

    Declared like an `Event`, with a type and a version:

    ```python
    class ChargeCard(Command, type="payment.charge", version=1):
        order_id: str
        amount: Decimal

    await bus.send(ChargeCard(order_id="o-1", amount=Decimal("9.90")), to="payment")
    ```

    The group named in ``to`` receives it whatever its patterns; its handler for the
    command is the one whose pattern matches the command's type.
    """

    __message_kind__: ClassVar[str] = "command"


def message_type_of(message: Message) -> tuple[str, int]:
    """Return ``(type, version)`` of a message instance, or raise `ConfigError`."""
    if not isinstance(message, Message):
        raise ConfigError(
            f"can only publish tidings Event or Command instances, not {type(message).__name__}"
        )
    mtype = type(message).__message_type__
    if mtype is None:
        raise ConfigError(
            f"{type(message).__name__} has no message type: declare it as "
            f'class {type(message).__name__}(Event, type="name.verb")'
        )
    return mtype, type(message).__message_version__


def _remember(cls: type[Message]) -> None:
    mtype = cls.__message_type__
    if mtype is not None:
        _CLASSES.setdefault(mtype, []).append(weakref.ref(cls))


def message_class(mtype: str, version: int | None) -> type[Message] | None:
    """The message class this process defines for `mtype`: the one of `version` when there
    is one, else the newest version (the data is upcast and validated into it); among
    equals, the class defined last. None when no class declares that type."""
    refs = _CLASSES.get(mtype, [])
    refs[:] = [r for r in refs if r() is not None]
    classes = [c for c in (r() for r in refs) if c is not None and c.__message_type__ == mtype]
    if not classes:
        return None
    exact = [c for c in classes if c.__message_version__ == version]
    if exact:
        return exact[-1]
    newest = max(c.__message_version__ for c in classes)
    return [c for c in classes if c.__message_version__ == newest][-1]
