"""Upcasters: functions that turn the data of an old version of an event into the next one.

The registry lives in the core, which applies it on the way in (the ``Validate`` stage);
`tidings.schemas` is the public door to it (``upcaster``, ``registry``).

Rules, as the pipeline applies them to a handler whose model is a `Message` of type ``T``
and version ``N`` receiving data of type ``T`` and version ``V`` (``dataversion``, 1 when
absent):

- ``V == N``: validated as it is.
- ``V > N``: dead-lettered, naming both versions (a consumer cannot guess what a newer
  producer meant).
- ``V < N`` and no upcaster registered for ``T``: validated as it is. Old data reaches the new
  model directly, which is safe when the change was compatible (what ``tidings schema check``
  verifies for versions no upcaster links).
- ``V < N`` and some upcaster registered for ``T``: the upcasters ``V -> V+1 -> ... -> N`` run in
  order; a bus whose handler needs a step that is missing does not start (`ConfigError`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._exceptions import ConfigError
from .messages import Message

__all__ = ["Upcast", "UpcastError", "Upcasters", "registry", "upcaster", "version_of"]

Upcast = Callable[[dict[str, Any]], dict[str, Any]]
"""An upcaster: the data (a dict) of one version in, the data of the next version out."""


class UpcastError(Exception):
    """The data cannot be brought to the handler's version (a newer version, or an upcaster
    that failed); the delivery is dead-lettered with this reason."""


class Upcasters:
    """The upcasters of a process, keyed by ``(type, from_version)``.

    Each turns the data (a dict) of version ``from_version`` of ``type`` into the data of
    version ``from_version + 1``. The module-level `registry` is the one the pipeline uses.
    """

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcast] = {}

    def register(self, type: str, from_version: int, func: Upcast) -> Upcast:
        """Register `func` as the step from `from_version` of `type` to the next version.

        Raises:
            ConfigError: a bad version, or another function registered for that step.
        """
        if not isinstance(type, str) or not type:
            raise ConfigError(f"upcaster: the message type must be a non-empty str, not {type!r}")
        if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
            raise ConfigError(
                f"upcaster for {type!r}: from_version must be a positive integer, "
                f"not {from_version!r}"
            )
        if not callable(func):
            raise ConfigError(f"upcaster for {type!r} v{from_version}: {func!r} is not callable")
        taken = self._steps.get((type, from_version))
        if taken is not None and _qualname(taken) != _qualname(func):
            raise ConfigError(
                f"two upcasters for {type!r} from version {from_version}: "
                f"{_qualname(taken)} and {_qualname(func)}"
            )
        self._steps[(type, from_version)] = func
        return func

    def get(self, type: str, from_version: int) -> Upcast | None:
        """The step from `from_version` of `type`, if one is registered."""
        return self._steps.get((type, from_version))

    def steps(self, type: str) -> list[int]:
        """The versions of `type` that have an upcaster to the next one, in order."""
        return sorted(v for t, v in self._steps if t == type)

    def types(self) -> list[str]:
        """The message types that have at least one upcaster."""
        return sorted({t for t, _ in self._steps})

    def missing(self, type: str, version: int) -> list[int]:
        """The steps ``v -> v+1`` (``v`` listed) that a handler of `version` of `type`
        lacks: none when no upcaster of `type` exists at all (old data is validated as it
        is), else every ``v`` in ``1 .. version-1`` without an upcaster."""
        have = set(self.steps(type))
        if not have:
            return []
        return [v for v in range(1, version) if v not in have]

    def check(self, type: str, version: int, where: str) -> None:
        """Raise `ConfigError` naming the missing steps of `type` up to `version`."""
        gaps = self.missing(type, version)
        if gaps:
            steps = ", ".join(f"{v} -> {v + 1}" for v in gaps)
            raise ConfigError(
                f"{where} takes {type!r} version {version}, but the upcasters of {type!r} "
                f"have a gap: no upcaster for {steps} "
                f"(register @upcaster({type!r}, from_version={gaps[0]}))"
            )

    def upcast(self, type: str, version: int | None, target: int, data: Any) -> Any:
        """Bring `data` of `version` (None means 1) of `type` to `target`.

        Raises:
            UpcastError: the data is newer than `target`, or an upcaster failed or did not
                return a dict.
        """
        current = 1 if version is None else version
        if current > target:
            raise UpcastError(
                f"{type!r} version {current} is newer than version {target} that the "
                "handler's model knows"
            )
        if current == target or not self.steps(type):
            return data
        while current < target:
            step = self._steps.get((type, current))
            if step is None:  # the start-up check makes this unreachable for a running bus
                raise UpcastError(f"no upcaster for {type!r} from version {current}")
            if not isinstance(data, dict):
                raise UpcastError(
                    f"cannot upcast {type!r} version {current}: the data is a "
                    f"{data.__class__.__name__}, not an object"
                )
            try:
                data = step(dict(data))
            except Exception as exc:
                raise UpcastError(
                    f"upcaster {_qualname(step)} of {type!r} from version {current} "
                    f"failed: {exc.__class__.__name__}: {exc}"
                ) from exc
            if not isinstance(data, dict):
                raise UpcastError(
                    f"upcaster {_qualname(step)} of {type!r} from version {current} "
                    f"returned a {data.__class__.__name__}, not a dict"
                )
            current += 1
        return data

    def clear(self) -> None:
        """Forget every upcaster (for tests)."""
        self._steps.clear()

    def __len__(self) -> int:
        return len(self._steps)


def version_of(model: Any, message_type: str | None = None) -> int | None:
    """The version of `model` when it is a `Message` class (of `message_type`, if given)."""
    if not (isinstance(model, type) and issubclass(model, Message)):
        return None
    mtype = model.__message_type__
    if mtype is None or (message_type is not None and mtype != message_type):
        return None
    return model.__message_version__


def _qualname(func: Any) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


registry = Upcasters()
"""The upcasters the pipeline applies (``tidings.schemas.registry``)."""


def upcaster(type: str, from_version: int) -> Callable[[Upcast], Upcast]:
    """Register the decorated ``dict -> dict`` function as the upcaster of `type` from
    `from_version` to ``from_version + 1`` in `registry` (see `Upcasters.register`)."""

    def register(func: Upcast) -> Upcast:
        return registry.register(type, from_version, func)

    return register
