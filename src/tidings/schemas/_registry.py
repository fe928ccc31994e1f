"""The schema registry kept in a repository: ``DIR/<type>/v<version>.json``, and the gate
that compares the code with it."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._core.upcasting import registry as upcasters
from .._exceptions import ConfigError
from ._catalog import Catalog, catalog_of, json_schema_of
from ._rules import BACKWARD, FORWARD, compare_schemas

__all__ = ["Incompatibility", "Mode", "check_schemas", "export_schemas", "read_registry"]


class Mode(enum.Enum):
    """Which compatibility ``tidings schema check`` requires, as Confluent's modes.

    A ``*_TRANSITIVE`` mode compares a version with every earlier stored version, the others
    with the latest earlier one only. Earlier versions are compared only where no upcaster
    links them (with upcasters, old data reaches handlers through them, not as it is). The
    stored schema of the same version is always compared, in the mode's directions.
    """

    BACKWARD = "backward"
    FORWARD = "forward"
    FULL = "full"
    BACKWARD_TRANSITIVE = "backward_transitive"
    FORWARD_TRANSITIVE = "forward_transitive"
    FULL_TRANSITIVE = "full_transitive"
    NONE = "none"

    @property
    def directions(self) -> frozenset[str]:
        """``BACKWARD`` and/or ``FORWARD``: the ways that must hold."""
        if self is Mode.NONE:
            return frozenset()
        name = self.value.removesuffix("_transitive")
        return frozenset(
            {"backward": {BACKWARD}, "forward": {FORWARD}}.get(name, {BACKWARD, FORWARD})
        )

    @property
    def transitive(self) -> bool:
        """Whether every earlier version is compared, not only the latest."""
        return self.value.endswith("_transitive")


@dataclass(frozen=True)
class Incompatibility:
    """A change of the code's schema that the mode does not allow.

    Attributes:
        type: the message type.
        version: the version in the code.
        against: the stored version it was compared with; None for a missing upcaster.
        path: the field (dotted into nested models); empty for the message itself.
        rule: what changed.
        breaks: ``BACKWARD`` and/or ``FORWARD``, those the mode requires.
    """

    type: str
    version: int
    against: int | None
    path: str
    rule: str
    breaks: tuple[str, ...]

    def __str__(self) -> str:
        where = f"field {self.path!r}" if self.path else "the message"
        if self.against is None:
            return f"{self.type} v{self.version}: {self.rule}"
        return (
            f"{self.type} v{self.version} against stored v{self.against}: {where}: "
            f"{self.rule} breaks {' and '.join(self.breaks)}"
        )


def _file(directory: Path, type: str, version: int) -> Path:
    return directory / type / f"v{version}.json"


def export_schemas(bus: Any, directory: str | Path) -> list[Path]:
    """Write ``directory/<type>/v<version>.json``, the JSON Schema of every message `bus`
    handles or declares with ``publishes`` (keys sorted, two-space indent, a newline at the
    end); leave the files of other versions alone. Return the paths written."""
    root = Path(directory)
    written = []
    for (mtype, version), cls in catalog_of(bus).messages.items():
        path = _file(root, mtype, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_schema_of(cls), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def read_registry(directory: str | Path) -> dict[str, dict[int, dict[str, Any]]]:
    """The stored schemas under `directory`: type -> version -> schema.

    Raises:
        ConfigError: no such directory, a file that is not ``v<N>.json`` of JSON.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(f"no schema registry at {root}: no such directory")
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(root.glob("*/*.json")):
        stem = path.stem
        if not (stem.startswith("v") and stem[1:].isdigit() and int(stem[1:]) >= 1):
            raise ConfigError(f"{path}: not a schema file name (v<version>.json)")
        try:
            schema = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a JSON schema: {exc}") from None
        if not isinstance(schema, dict):
            raise ConfigError(f"{path}: not a JSON schema: a JSON object is expected")
        found.setdefault(path.parent.name, {})[int(stem[1:])] = schema
    return found


def _linked(mtype: str, earlier: int, version: int) -> bool:
    """Whether an upcaster sits between `earlier` and `version` of `mtype`."""
    return any(earlier <= step < version for step in upcasters.steps(mtype))


def _gaps(catalog: Catalog) -> list[Incompatibility]:
    """The upcasters a handler needs and lacks (its bus would not start), in any mode."""
    found = []
    for handlers in catalog.received.values():
        for _, model in handlers:
            if model is None or not model.__message_type__:
                continue
            mtype, version = model.__message_type__, model.__message_version__
            for step in upcasters.missing(mtype, version):
                rule = f"no upcaster from version {step} to {step + 1} (the bus would not start)"
                gap = Incompatibility(mtype, version, None, "", rule, (BACKWARD,))
                if gap not in found:
                    found.append(gap)
    return found


def check_schemas(
    bus: Any, directory: str | Path, mode: Mode | str = Mode.BACKWARD_TRANSITIVE
) -> list[Incompatibility]:
    """Compare the schemas of `bus`'s messages with those stored in `directory` (see
    `Mode`); return what breaks, empty when all is compatible. Whatever the mode but
    ``none``, a handler lacking an upcaster it needs is reported too (the rule names the
    missing step; the bus would not start).

    Raises:
        ConfigError: a bad mode, or a registry that cannot be read (`read_registry`).
    """
    try:
        mode = Mode(mode.value if isinstance(mode, Mode) else str(mode).lower())
    except ValueError:
        names = ", ".join(m.value for m in Mode)
        raise ConfigError(f"unknown compatibility mode {mode!r}: use one of {names}") from None
    stored = read_registry(directory)
    wanted = mode.directions
    found: list[Incompatibility] = []
    if not wanted:
        return found
    catalog = catalog_of(bus)
    found += _gaps(catalog)
    for (mtype, version), cls in catalog.messages.items():
        versions = stored.get(mtype, {})
        earlier = sorted(v for v in versions if v < version)
        if not mode.transitive:
            earlier = earlier[-1:]
        against = [v for v in earlier if not _linked(mtype, v, version)]
        if version in versions:
            against.append(version)
        schema = json_schema_of(cls)
        for other in against:
            for change in compare_schemas(versions[other], schema):
                breaks = tuple(b for b in change.breaks if b in wanted)
                if breaks:
                    found.append(
                        Incompatibility(mtype, version, other, change.path, change.rule, breaks)
                    )
    return found
