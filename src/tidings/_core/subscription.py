"""Handler registration: groups, their handlers and the settings they share."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .._exceptions import ConfigError
from ..transports._group import GroupSpec
from ..transports._routing import matches, patterns_overlap, validate_pattern
from .retry import Retry

__all__ = [
    "Group",
    "Handler",
    "HandlerFunc",
    "HandlerOptions",
    "check_group_names",
    "registry_add",
]

HandlerFunc = Callable[..., Awaitable[Any]]


@dataclass(slots=True)
class Handler:
    """One subscribed handler and its per-handler settings."""

    pattern: str
    func: HandlerFunc
    group: str
    retry: Retry
    idempotent: bool
    timeout: float | None
    adapter: TypeAdapter[Any] | None
    model: type[BaseModel] | None
    wants_context: bool
    transactional: bool = False

    @property
    def name(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def validate(self, data: Any) -> Any:
        """Turn decoded JSON data into the handler's annotated type."""
        if self.adapter is None:
            return data
        return self.adapter.validate_python(data)


@dataclass(slots=True)
class Group:
    """A group: a durable subscription with one or more handlers on disjoint patterns."""

    name: str
    concurrency: int = 16
    ordered: bool = False
    max_ready: int | None = None
    handlers: list[Handler] = field(default_factory=list)

    def spec(self) -> GroupSpec:
        return GroupSpec(
            name=self.name,
            patterns=tuple(h.pattern for h in self.handlers),
            concurrency=self.concurrency,
            ordered=self.ordered,
            max_ready=self.max_ready,
        )

    def handler_for(self, event_type: str) -> Handler | None:
        """The one handler whose pattern matches `event_type`, if any."""
        for handler in self.handlers:
            if matches(handler.pattern, event_type):
                return handler
        return None

    @property
    def idempotent(self) -> bool:
        return any(h.idempotent for h in self.handlers)

    @property
    def transactional(self) -> bool:
        """True when a handler of the group runs in an inbox transaction."""
        return any(h.transactional for h in self.handlers)


def _annotation_of(func: HandlerFunc) -> tuple[Any, bool]:
    """The first parameter's annotation and whether the handler takes a context."""
    if not inspect.iscoroutinefunction(func):
        raise ConfigError(f"handler {func.__qualname__} must be an async function (async def)")
    params = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not params or len(params) > 2:
        raise ConfigError(
            f"handler {func.__qualname__} must take (event) or (event, ctx), "
            f"not {len(params)} positional parameters"
        )
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # unresolvable forward references
        raise ConfigError(
            f"cannot resolve the type hints of handler {func.__qualname__}: {exc}"
        ) from exc
    return hints.get(params[0].name, Any), len(params) == 2


def _adapter_for(annotation: Any) -> tuple[TypeAdapter[Any] | None, type[BaseModel] | None]:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return None, None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return TypeAdapter(annotation), annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or annotation in (dict, list, str, int):
        return TypeAdapter(annotation), None
    if origin in (dict, list):
        return TypeAdapter(annotation), None
    raise ConfigError(f"cannot validate events into {annotation!r}: annotate with a pydantic model")


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    """The options of one `Bus.subscribe` call (see there)."""

    group: str | None = None
    retry: Retry | None = None
    concurrency: int = 16
    idempotent: bool = False
    ordered: bool = False
    timeout: float | None = 300.0
    max_ready: int | None = None
    transactional: bool = False


def registry_add(
    groups: dict[str, Group], pattern: str, func: HandlerFunc, options: HandlerOptions
) -> Handler:
    """Register `func` and return its handler; refuse conflicting group settings and
    overlapping patterns in one group with a `ConfigError`."""
    group, retry, concurrency = options.group, options.retry, options.concurrency
    idempotent, ordered, timeout = options.idempotent, options.ordered, options.timeout
    max_ready = options.max_ready
    validate_pattern(pattern)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a positive integer, not {concurrency!r}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout must be positive seconds or None, not {timeout!r}")
    if max_ready is not None and (
        isinstance(max_ready, bool) or not isinstance(max_ready, int) or max_ready < 1
    ):
        raise ConfigError(f"max_ready must be a positive integer or None, not {max_ready!r}")
    if retry is not None and not isinstance(retry, Retry):
        raise ConfigError(f"retry must be a tidings.Retry, not {type(retry).__name__}")
    annotation, wants_context = _annotation_of(func)
    adapter, model = _adapter_for(annotation)
    name = group or f"{func.__module__}.{func.__qualname__}"
    existing = groups.get(name)
    if existing is None:
        existing = groups[name] = Group(
            name, concurrency=concurrency, ordered=ordered, max_ready=max_ready
        )
    else:
        # A group's settings are given by the first handler that sets them away from the
        # default; a later handler may repeat them or leave them at the default.
        existing.concurrency = _merge(name, "concurrency", existing.concurrency, concurrency, 16)
        existing.ordered = _merge(name, "ordered", existing.ordered, ordered, False)
        existing.max_ready = _merge(name, "max_ready", existing.max_ready, max_ready, None)
        for other in existing.handlers:
            if patterns_overlap(other.pattern, pattern):
                raise ConfigError(
                    f"group {name!r}: pattern {pattern!r} of {func.__qualname__} can match the "
                    f"same events as {other.pattern!r} of {other.func.__qualname__}"
                )
    handler = Handler(
        pattern=pattern,
        func=func,
        group=name,
        retry=retry or Retry(),
        idempotent=idempotent,
        timeout=timeout,
        adapter=adapter,
        model=model,
        wants_context=wants_context,
        transactional=bool(options.transactional),
    )
    existing.handlers.append(handler)
    return handler


def check_group_names(groups: Mapping[str, Group], names: Iterable[str] | None) -> None:
    """Refuse `names` that are not groups of `groups`, naming them and the ones there are."""
    unknown = sorted(set(names or ()) - set(groups))
    if unknown:
        raise ConfigError(
            f"no group named {', '.join(map(repr, unknown))} on this bus; "
            f"it has {', '.join(map(repr, sorted(groups))) or 'none'}"
        )


def _merge(group: str, option: str, current: Any, new: Any, default: Any) -> Any:
    if new in (current, default):
        return current
    if current == default:
        return new
    raise ConfigError(f"group {group!r}: conflicting {option} settings ({current!r} and {new!r})")
