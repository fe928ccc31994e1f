"""`Saga`, the `start` and `on` decorators, and what a saga class defines: its steps.

A saga class is a pydantic model whose fields are the persisted state of one instance; its
steps are async methods marked with `start` (an event that creates an instance) or `on` (an
event for an instance that exists), each with the pattern of the event types it takes and
the function that finds the instance's key in the event.
"""

from __future__ import annotations

import inspect
import operator
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr

from .._exceptions import ConfigError

__all__ = [
    "Saga",
    "SagaDefinition",
    "Step",
    "definition_of",
    "message_type",
    "on",
    "start",
]

StepFunc = Callable[..., Awaitable[None]]
KeyOf = Callable[[Any], Any] | str
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__tidings_saga_step__"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def message_type(message: object) -> str | None:
    """The type of a tidings message (``order.placed``), or None for anything else."""
    found = getattr(type(message), "__message_type__", None)
    return found if isinstance(found, str) else None


@dataclass(frozen=True, slots=True)
class _Mark:
    pattern: str
    key: Callable[[Any], Any]
    starts: bool


def _step(pattern: str, key: KeyOf, starts: bool) -> Callable[[F], F]:
    decorator = "start" if starts else "on"
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"@{decorator} needs an event type or pattern, not {pattern!r}")
    if isinstance(key, str):
        key_of: Callable[[Any], Any] = operator.attrgetter(key)
    elif callable(key):
        key_of = key
    else:
        raise ConfigError(
            f"@{decorator}({pattern!r}, key=...) takes a function of the event "
            f"(key=lambda e: e.order_id) or a field name, not {type(key).__name__}"
        )

    def mark(func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise ConfigError(f"saga step {func.__qualname__} must be an async method")
        setattr(func, _MARK, _Mark(pattern, key_of, starts))
        return func

    return mark


def start(pattern: str, *, key: KeyOf) -> Callable[[F], F]:
    """Mark a saga method as a start step: an event matching `pattern` creates the instance
    whose key ``key(event)`` returns (a function of the event, or the name of its field).

    A start event for an instance that exists already is ignored, so two racing copies of
    it (or two start events for one key) make one instance and run the step once.
    """
    return _step(pattern, key, starts=True)


def on(pattern: str, *, key: KeyOf) -> Callable[[F], F]:
    """Mark a saga method as a step for an instance that exists: an event matching
    `pattern` runs it on the instance whose key ``key(event)`` returns.

    An event for a key with no instance is ignored (with a log line), or dead-lettered with
    ``bus.add_saga(..., on_missing="dead_letter")``; an event for a completed instance is
    ignored.
    """
    return _step(pattern, key, starts=False)


class Saga(BaseModel):
    """A process manager: its fields are the persisted state of one instance.

    ```python
    class Checkout(Saga, name="checkout"):
        order_id: str = ""
        status: str = "new"

        @start("order.placed", key=lambda e: e.order_id)
        async def placed(self, event: OrderPlaced, ctx: SagaContext) -> None:
            self.order_id, self.status = event.order_id, "reserving"
            await ctx.send(ReserveStock(order_id=event.order_id), to="inventory")
    ```

    Every field needs a default (an instance starts from them, and a field added in a later
    release is filled from its default when older instances load); the state is stored as
    JSON and validated when it is loaded. A field named ``status`` (a string) is the
    instance's status that ``tidings sagas list`` shows and filters on, until
    `SagaContext.complete` gives the final one. `name` (default: the class name in lower
    case) names the saga, its group and its rows.

    Steps run again when their transition loses a race with another event of the same
    instance, so they act only through the `SagaContext` (which starts afresh each time)
    and their own fields, never on the outside world directly.
    """

    model_config = ConfigDict(extra="ignore")

    __saga_name__: ClassVar[str] = ""

    _key: str = PrivateAttr(default="")

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ConfigError(
                    f"saga {cls.__name__}: name {name!r} must be letters, digits, '_', '.', '-'"
                )
            cls.__saga_name__ = name
        elif "__saga_name__" not in cls.__dict__:
            cls.__saga_name__ = cls.__name__.lower()

    @property
    def key(self) -> str:
        """The key of this instance (what the step's ``key`` function returned)."""
        return self._key


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a saga: a method, the events it takes, and how it finds the key."""

    name: str
    pattern: str
    starts: bool
    func: StepFunc
    key: Callable[[Any], Any]
    model: Any

    def key_of(self, event: Any) -> str:
        """The instance key of `event`; `ValueError` when it has none."""
        value = self.key(event)
        if value is None or value == "":
            raise ValueError(f"the key of the event is {value!r}")
        return str(value)


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    """A saga class checked and taken apart: its name, fields and steps."""

    cls: type[Saga]
    name: str
    steps: tuple[Step, ...]

    def status_of(self, saga: Saga) -> str:
        """The instance's status while it runs: its ``status`` field, else ``running``."""
        value = getattr(saga, "status", None) if "status" in self.cls.model_fields else None
        return value if isinstance(value, str) and value else "running"


def _model_of(cls: type[Saga], func: StepFunc) -> Any:
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(params) != 3:
        raise ConfigError(
            f"saga step {cls.__name__}.{func.__name__} must take (self, event, ctx), "
            f"not {len(params)} positional parameters"
        )
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # unresolvable forward references
        raise ConfigError(
            f"cannot resolve the type hints of saga step {cls.__name__}.{func.__name__}: {exc}"
        ) from exc
    return hints.get(params[1].name, Any)


def definition_of(cls: Any) -> SagaDefinition:
    """Check `cls` and return its definition.

    Raises:
        ConfigError: not a `Saga` subclass, a field without a default, a field named
            ``key``, no `start` step, or a step that does not take ``(self, event, ctx)``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Saga)) or cls is Saga:
        raise ConfigError(f"add_saga() takes a Saga subclass, not {cls!r}")
    required = [n for n, f in cls.model_fields.items() if f.is_required()]
    if required:
        raise ConfigError(
            f"saga {cls.__name__}: every field is persisted state and needs a default "
            f"(instances start from the defaults, older ones load with them): "
            f"{', '.join(required)}"
        )
    if "key" in cls.model_fields:
        raise ConfigError(f"saga {cls.__name__}: 'key' is the instance's key, not a field name")
    steps: dict[str, Step] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            mark = getattr(value, _MARK, None)
            if isinstance(mark, _Mark):
                model = _model_of(cls, value)
                steps[attr] = Step(attr, mark.pattern, mark.starts, value, mark.key, model)
    if not any(s.starts for s in steps.values()):
        raise ConfigError(f"saga {cls.__name__} has no @start step: nothing would create one")
    return SagaDefinition(cls, cls.__saga_name__, tuple(steps.values()))
