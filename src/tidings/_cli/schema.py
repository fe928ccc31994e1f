"""``tidings schema export|check MODULE:bus``: the schema registry kept in a repository.

``export`` writes ``DIR/<type>/v<version>.json`` for every message the bus handles or
declares with ``bus.publishes``; ``check`` compares the code with such a directory under a
compatibility mode and exits 1 naming each breaking field and rule, 0 when all is
compatible, 2 when the input is wrong (a target that does not load, no directory, a file
that is not JSON), each error on one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import ConfigError
from ..schemas import Mode, check_schemas, export_schemas
from .errors import fail
from .helptext import TidingsCommand, TidingsGroup
from .target import load_bus

__all__ = ["schema_app"]

schema_app = typer.Typer(
    cls=TidingsGroup,
    help="The schema registry: export the JSON Schemas of a bus, check the code against them.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

TargetArgument = Annotated[
    str,
    typer.Argument(
        metavar="MODULE:BUS",
        help="Where the bus is: a dotted module or a file path, e.g. app.web:bus or "
        "path/to/app.py:bus (the attribute defaults to bus).",
    ),
]
DirArgument = Annotated[
    Path, typer.Argument(metavar="DIR", help="The registry: DIR/<type>/v<version>.json.")
]
AgainstOption = Annotated[
    Path,
    typer.Option(
        "--against", metavar="DIR", help="The registry to compare with (written by export)."
    ),
]
ModeOption = Annotated[
    Mode,
    typer.Option(
        "--mode",
        case_sensitive=False,
        help="The compatibility required, as Confluent's modes; *_transitive compares every "
        "earlier version, the others the latest one.",
    ),
]


@schema_app.command(cls=TidingsCommand, no_args_is_help=True)
def export(target: TargetArgument, directory: DirArgument) -> None:
    """Write the JSON Schema of every message the bus handles or publishes, one file per
    type and version; files of other versions stay."""
    try:
        bus = load_bus(target)
        written = export_schemas(bus, directory)
    except (ConfigError, OSError) as exc:
        fail(str(exc), code=2)
    for path in written:
        typer.echo(str(path))
    typer.echo(f"exported {len(written)} schema(s) to {directory}", err=True)


@schema_app.command(cls=TidingsCommand, no_args_is_help=True)
def check(
    target: TargetArgument,
    against: AgainstOption,
    mode: ModeOption = Mode.BACKWARD_TRANSITIVE,
) -> None:
    """Compare the bus's message schemas with a registry: exit 1 naming each breaking field
    and rule, 0 when compatible, 2 on bad input."""
    try:
        bus = load_bus(target)
        found = check_schemas(bus, against, mode)
    except ConfigError as exc:
        fail(str(exc), code=2)
    for problem in found:
        typer.echo(str(problem))
    if found:
        fail(f"{len(found)} incompatible change(s) under mode {mode.value}", code=1)
    typer.echo(f"compatible with {against} (mode {mode.value})")
