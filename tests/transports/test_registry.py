"""The registry of transports: schemes served by registered factories and entry points, and
the errors for URLs no transport serves."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tidings import ConfigError
from tidings.transports import (
    ENTRY_POINT_GROUP,
    Transport,
    TransportOptions,
    open_transport,
    register_transport,
)
from tidings.transports.memory import MemoryTransport


def _scheme() -> str:
    """A scheme no other test uses (the registry lives as long as the process)."""
    return f"t{uuid.uuid4().hex[:10]}"


class Recording:
    """A factory that records what it was called with and builds a memory transport."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, options: Mapping[str, Any]) -> Transport:
        self.calls.append((url, dict(options)))
        return MemoryTransport(f"memory://{uuid.uuid4().hex}", TransportOptions())


def test_a_registered_factory_builds_the_transports_of_its_scheme() -> None:
    # Given a factory registered for a new scheme
    scheme, factory = _scheme(), Recording()
    register_transport(scheme, factory)
    # When a URL of that scheme is opened, in any case, with common and own options
    transport = open_transport(f"{scheme.upper()}://somewhere/x", {"name": "shop", "depth": 3})
    # Then the factory got the URL and every option, and its transport is returned
    assert isinstance(transport, MemoryTransport)
    assert factory.calls == [(f"{scheme.upper()}://somewhere/x", {"name": "shop", "depth": 3})]


def test_a_taken_scheme_is_refused_unless_replace_is_given() -> None:
    scheme, first, second = _scheme(), Recording(), Recording()
    register_transport(scheme, first)
    # A second registration of the scheme is refused, and the first one stays
    with pytest.raises(ConfigError, match=f"already registered for {scheme}://.*replace=True"):
        register_transport(scheme, second)
    open_transport(f"{scheme}://a", {})
    assert len(first.calls) == 1 and not second.calls
    # With replace=True the new factory takes over
    register_transport(scheme, second, replace=True)
    open_transport(f"{scheme}://a", {})
    assert len(first.calls) == 1 and len(second.calls) == 1


@pytest.mark.parametrize("scheme", ["memory", "sqlite", "amqp", "AMQPS"])
def test_the_built_in_schemes_are_taken(scheme: str) -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_transport(scheme, Recording())


@pytest.mark.parametrize("scheme", ["", "1abc", "my scheme", "a://b", "a_b"])
def test_a_malformed_scheme_is_refused(scheme: str) -> None:
    with pytest.raises(ConfigError, match="bad transport scheme"):
        register_transport(scheme, Recording())


def test_a_factory_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="must be callable"):
        register_transport(_scheme(), "mypackage:create")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "malformed bus URL 'not a url': expected scheme://"),
        ("admin:secret@host", "malformed bus URL 'admin:\\*\\*\\*@host'"),
        ("redis://u:pw@localhost", "unknown bus URL scheme redis:// in 'redis://u:\\*\\*\\*@"),
        ("nats://localhost:4222", "unknown bus URL scheme nats://"),
    ],
)
def test_urls_no_transport_serves_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_transport(url, {})


def _install(site: Path, scheme: str, target: str, module: str | None = None) -> None:
    """A distribution in `site` declaring `scheme` in the entry-point group (and, when
    given, the source of the module `target` names)."""
    dist = site / f"d{uuid.uuid4().hex[:8]}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.stem}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{scheme} = {target}\n")
    if module is not None:
        name = target.split(":")[0]
        (site / f"{name}.py").write_text(textwrap.dedent(module))


FACTORY_MODULE = """
    from tidings.transports import TransportOptions
    from tidings.transports.memory import MemoryTransport

    def create(url, options):
        return MemoryTransport("memory://entry-point", TransportOptions(name=options["name"]))
"""


def test_an_entry_point_is_loaded_only_when_its_scheme_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an installed package declaring a scheme, whose module nobody imported
    scheme, module = _scheme(), f"m{uuid.uuid4().hex[:10]}"
    _install(tmp_path, scheme, f"{module}:create", FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    # When other schemes are opened, the package is not imported
    open_transport("memory://elsewhere", {})
    assert module not in sys.modules
    # Then a URL of its scheme loads it and uses its factory
    transport = open_transport(f"{scheme}://x", {"name": "shop"})
    assert module in sys.modules
    assert isinstance(transport, MemoryTransport) and transport.options.name == "shop"


def test_a_registered_factory_wins_over_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheme, module = _scheme(), f"m{uuid.uuid4().hex[:10]}"
    _install(tmp_path, scheme, f"{module}:create", FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = Recording()
    register_transport(scheme, factory)
    open_transport(f"{scheme}://x", {})
    assert len(factory.calls) == 1
    assert module not in sys.modules


def test_an_entry_point_that_cannot_be_loaded_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheme = _scheme()
    _install(tmp_path, scheme, "no_such_module_here:create")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=f"transport for {scheme}:// .* could not be loaded"):
        open_transport(f"{scheme}://x", {})
