"""``tidings asyncapi MODULE:bus``: the AsyncAPI 3.0.0 document of a bus, JSON or YAML.

JSON goes to stdout unless ``--output FILE``; YAML needs PyYAML (``tidings[schemas]``).
"""

from __future__ import annotations

import enum
import importlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import ConfigError
from ..schemas import asyncapi_document
from .errors import fail
from .schema import TargetArgument
from .target import load_bus

__all__ = ["asyncapi"]


class Format(enum.Enum):
    """How the document is written."""

    JSON = "json"
    YAML = "yaml"


FormatOption = Annotated[
    Format, typer.Option("--format", case_sensitive=False, help="json, or yaml (tidings[schemas]).")
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Write to FILE instead of stdout.",
        show_default=False,
    ),
]


def _yaml(document: dict[str, Any]) -> str:
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        fail("--format yaml needs PyYAML: pip install 'tidings[schemas]' (or pyyaml)", code=2)
    text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return text


def asyncapi(
    target: TargetArgument,
    format: FormatOption = Format.JSON,
    output: OutputOption = None,
) -> None:
    """Print the AsyncAPI 3.0.0 document of a bus: a channel per message type, receive
    operations per group, send operations for bus.publishes classes, payload schemas and
    AMQP bindings."""
    try:
        document = asyncapi_document(load_bus(target))
    except ConfigError as exc:
        fail(str(exc), code=2)
    if format is Format.YAML:
        text = _yaml(document)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        fail(f"cannot write {output}: {exc}", code=2)
