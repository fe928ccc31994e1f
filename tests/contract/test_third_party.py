"""The contract suite on a third-party transport (`thirdparty.RelayTransport`, written against
public names only), reached each way a user can reach one: a scheme registered with
`register_transport`, a factory given to the harness (``Bus(url, transport=factory)``), and an
entry point of an installed package."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import eventually
from tidings import Bus, ConfigError, Event
from tidings.contract import BusContract, Harness, TransportContract
from tidings.transports import register_transport
from tidings.transports.memory import MemoryBroker

from . import thirdparty


class RelayHarness(Harness):
    """A fresh relay name per test on real time; its memory broker is dropped on close."""

    def __init__(self, scheme: str, *, factory: bool = False) -> None:
        self.name = uuid.uuid4().hex
        super().__init__(
            f"{scheme}://{self.name}",
            factory=thirdparty.create_transport if factory else None,
        )

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            MemoryBroker.discard(f"memory://relay-{self.name}")


@pytest.fixture(scope="module", autouse=True)
def relay_scheme() -> None:
    # replace=True: the scheme stays registered for the process, and a re-run in the same
    # process (pytest-xdist's looponfail, a debugger) registers it again.
    register_transport(thirdparty.SCHEME, thirdparty.create_transport, replace=True)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with RelayHarness(thirdparty.SCHEME) as h:
        yield h


class TestRegisteredSchemeBus(BusContract):
    pass


class TestRegisteredSchemeTransport(TransportContract):
    pass


class TestFactoryBus(BusContract):
    """The same suite with the factory handed to the harness: the URL's scheme is registered
    nowhere, so every bus and transport must come from the factory."""

    @pytest.fixture
    async def harness(self) -> AsyncIterator[Harness]:
        async with RelayHarness("unregistered-relay", factory=True) as h:
            yield h


class TestFactoryTransport(TransportContract):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[Harness]:
        async with RelayHarness("unregistered-relay", factory=True) as h:
            yield h


class Note(Event, type="note.kept", version=1):
    n: int


async def test_the_transport_gets_its_own_options_and_refuses_unknown_ones() -> None:
    # Given a bus on the relay scheme with the relay's own option
    bus = Bus(f"relay://{uuid.uuid4().hex}", label="audit")
    async with bus:
        transport = bus.transport
        # Then the factory built the third-party transport with that option
        assert isinstance(transport, thirdparty.RelayTransport)
        assert transport.settings.label == "audit"
    # And a keyword it does not take is refused, naming it and what is accepted
    with pytest.raises(ConfigError, match=r"unknown relay option\(s\) lable; known: label"):
        async with Bus(f"relay://{uuid.uuid4().hex}", lable="audit"):
            pass


def _install(site: Path, scheme: str, target: str) -> None:
    """A distribution in `site` (a directory on sys.path) declaring `scheme` in the
    ``tidings.transports`` entry-point group, as ``pip install`` would leave it."""
    dist = site / "relay_transport-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: relay-transport\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[tidings.transports]\n{scheme} = {target}\n")


async def test_an_installed_package_provides_a_scheme_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a package, installed on the path, whose entry point names the relay factory for
    # a scheme nobody registered
    scheme = f"relay{uuid.uuid4().hex[:8]}"
    _install(tmp_path, scheme, "tests.contract.thirdparty:create_transport")
    monkeypatch.syspath_prepend(str(tmp_path))
    # When a bus on that scheme publishes to a handler of its own
    got: list[int] = []
    bus = Bus(f"{scheme}://{uuid.uuid4().hex}")

    @bus.subscribe("note.kept", group="notes")
    async def keep(event: Note) -> None:
        got.append(event.n)

    async with bus:
        await bus.publish(Note(n=7))
        await eventually(lambda: got == [7], what="the note through the relay")
        # Then it ran on the relay transport the entry point provided
        assert isinstance(bus.transport, thirdparty.RelayTransport)
        assert bus.transport.published == 1
