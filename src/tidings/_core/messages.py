"""Typed messages: `Event` (a fact, to every interested group) and `Command` (to one group).

Both are pydantic v2 models. The message type and schema version are class keywords, not
fields, so a user's model may have fields named ``id``, ``type`` or ``time``::

    class OrderPlaced(Event, type="order.placed", version=1):
        order_id: str
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .._exceptions import ConfigError
from ..transports._routing import validate_pattern

__all__ = ["Command", "Event", "Message", "message_type_of"]


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
