"""Transports by URL scheme: an open registry, not an if-chain.

A scheme is served by a factory, ``factory(url, options) -> Transport``, found in this order:

1. one registered in this process with `register_transport` (the built-ins ``memory``,
   ``sqlite``, ``amqp``, ``amqps`` and ``kafka`` are registered this way);
2. an entry point of the group ``tidings.transports`` whose name is the scheme and whose
   value is the factory (``mine = "mypackage.transport:create"``), loaded the first time its
   scheme is asked for, so installing a package is enough;
3. otherwise the URL is refused with a `ConfigError`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from .._exceptions import ConfigError
from ._transport import Transport
from ._urls import mask_url

__all__ = ["ENTRY_POINT_GROUP", "TransportFactory", "open_transport", "register_transport"]

log = logging.getLogger(__name__)

TransportFactory: TypeAlias = Callable[[str, Mapping[str, Any]], Transport]
"""Builds a transport (not yet opened) for a URL: ``factory(url, options)``.

`options` holds the common settings under the keys of `COMMON_OPTIONS` (``name``, ``lease``,
``retention``, ``max_message_size``, ``dedupe_url``, ``dedupe_ttl``, ``clock``) plus the
transport-specific keyword options the user gave to ``Bus(url, **options)``. A factory refuses
options it does not know with a `ConfigError` (see `split_options`) before connecting.
"""

ENTRY_POINT_GROUP = "tidings.transports"
"""The entry-point group a package declares its transports in (name = scheme)."""

_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


def _builtin(module: str) -> TransportFactory:
    """The factory of a transport shipped with tidings, imported on first use (so that
    ``import tidings`` does not import every transport)."""

    def create(url: str, options: Mapping[str, Any]) -> Transport:
        package = importlib.import_module(module, __package__)
        factory: TransportFactory = package.create_transport
        return factory(url, options)

    create.__doc__ = f"Build a transport of `tidings.transports{module}` for `url`."
    return create


_factories: dict[str, TransportFactory] = {
    "memory": _builtin(".memory"),
    "sqlite": _builtin(".sqlite"),
    "amqp": _builtin(".rabbitmq"),
    "amqps": _builtin(".rabbitmq"),
    "kafka": _builtin(".kafka"),
}


def register_transport(scheme: str, factory: TransportFactory, *, replace: bool = False) -> None:
    """Serve URLs of `scheme` (``"mine"`` for ``mine://...``) with `factory`.

    A registered factory takes precedence over an entry point of the same scheme.

    Args:
        scheme: the URL scheme, letters first, then letters, digits, ``+``, ``-`` or ``.``;
            case does not matter.
        factory: ``factory(url, options) -> Transport`` (see `TransportFactory`).
        replace: allow replacing the factory of a scheme that has one (a built-in too).

    Raises:
        ConfigError: a malformed scheme, a factory that is not callable, or a scheme that
            has a factory already and `replace` is False.
    """
    if not isinstance(scheme, str) or not _SCHEME.match(scheme):
        raise ConfigError(
            f"bad transport scheme {scheme!r}: use letters, digits, '+', '-' or '.', "
            "starting with a letter (e.g. 'mine' for mine://...)"
        )
    if not callable(factory):
        raise ConfigError(
            f"the transport factory for {scheme}:// must be callable, not {factory!r}"
        )
    key = scheme.lower()
    if key in _factories and not replace:
        raise ConfigError(
            f"a transport is already registered for {key}://; "
            "pass replace=True to register_transport to replace it"
        )
    _factories[key] = factory


def _from_entry_point(scheme: str) -> TransportFactory | None:
    """The factory an installed package declares for `scheme`, loaded and remembered."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name.lower() != scheme:
            continue
        try:
            factory = entry.load()
        except Exception as exc:
            raise ConfigError(
                f"the transport for {scheme}:// (entry point {entry.value!r} of group "
                f"{ENTRY_POINT_GROUP!r}) could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(factory):
            raise ConfigError(
                f"the entry point {entry.value!r} for {scheme}:// is not a transport factory "
                f"(not callable: {factory!r})"
            )
        log.debug("transport for %s:// loaded from entry point %s", scheme, entry.value)
        return _factories.setdefault(scheme, factory)
    return None


def _factory_for(scheme: str, url: str) -> TransportFactory:
    factory = _factories.get(scheme) or _from_entry_point(scheme)
    if factory is not None:
        return factory
    raise ConfigError(
        f"unknown bus URL scheme {scheme}:// in {mask_url(url)!r}: "
        "use sqlite:///path.db, memory://, amqp:// or kafka://"
    )


def open_transport(url: str, options: Mapping[str, Any]) -> Transport:
    """Build the transport for `url` (not yet opened) with its scheme's factory.

    Args:
        url: the bus URL, ``scheme://...``.
        options: the common settings (`COMMON_OPTIONS` keys) and the transport's own
            keyword options, as the bus received them.

    Raises:
        ConfigError: a malformed URL, a scheme no transport serves, or an option the
            transport does not know or accept.
    """
    if not _URL_SCHEME.match(url):
        raise ConfigError(
            f"malformed bus URL {mask_url(url)!r}: expected scheme://..., e.g. "
            "sqlite:///tidings.db, memory://, amqp://user:pass@host/vhost"
        )
    scheme = url.split("://", 1)[0].lower()
    return _factory_for(scheme, url)(url, options)
