"""``tidings publish``: publish an event (or send a command) of any type with JSON data."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ConfigDict

from .. import Command, Event
from .._core.messages import Message
from .connection import connect, inspected_broker
from .errors import run_async
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption

__all__ = ["publish"]

TypeArgument = Annotated[str, typer.Argument(metavar="TYPE", help="Event type, e.g. order.placed.")]
DataOption = Annotated[
    str,
    typer.Option("--data", "-d", help="The event data: a JSON object, @file.json, or - for stdin."),
]
KeyOption = Annotated[str | None, typer.Option("--key", "-k", help="Ordering key.")]
IdOption = Annotated[str | None, typer.Option("--id", help="Event id (default: a new UUID).")]
ToOption = Annotated[
    str | None,
    typer.Option("--to", help="Send as a command to this one group instead of publishing."),
]


def _raw_message_class(message_type: str, base: type[Message]) -> type[Message]:
    """A message class of `message_type` that keeps whatever fields the data has."""

    def body(namespace: dict[str, Any]) -> None:
        namespace["model_config"] = ConfigDict(extra="allow")
        namespace["__module__"] = __name__

    cls = types.new_class("RawMessage", (base,), {"type": message_type}, body)
    return cls


def _read_text(data: str) -> str:
    """The text ``--data`` names: stdin for ``-``, a file for ``@path``, else itself."""
    if data == "-":
        return sys.stdin.read()
    if not data.startswith("@"):
        return data
    try:
        return Path(data[1:]).read_text(encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {data[1:]}: {exc.strerror}", param_hint="'--data'"
        ) from None


def _read_data(data: str) -> dict[str, Any]:
    """The JSON object ``--data`` gives; a usage error for anything else."""
    text = _read_text(data)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {text[:80]!r}",
            param_hint="'--data'",
        ) from None
    if not isinstance(value, dict):
        raise typer.BadParameter(
            f'must be a JSON object like \'{{"order_id": "o-1"}}\', not {type(value).__name__}',
            param_hint="'--data'",
        )
    return value


def publish(
    message_type: TypeArgument,
    data: DataOption = "{}",
    key: KeyOption = None,
    event_id: IdOption = None,
    to: ToOption = None,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """Publish an event of TYPE with JSON data, and print its id once it is durable.

    A type no group subscribes to is an error (start the workers first).
    """
    fields = _read_data(data)
    broker = inspected_broker(app, url, name, management_url)

    async def send() -> str:
        cls = _raw_message_class(message_type, Command if to else Event)
        message = cls.model_validate(fields)
        async with connect(broker) as bus:
            if to:
                return await bus.send(message, to=to, key=key, id=event_id)
            return await bus.publish(message, key=key, id=event_id)

    typer.echo(run_async(send(), urls=broker.secrets))
