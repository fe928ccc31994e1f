"""``tidings dlq``: list, show, replay and purge a group's dead letters."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Group as Renderables
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from .. import DeadLetter
from .connection import connect
from .errors import run_async
from .options import NameOption, UrlOption
from .output import stdout_console, table, to_json

__all__ = ["dlq_app"]

dlq_app = typer.Typer(
    help="Inspect, replay and purge dead-letter queues.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

GroupArgument = Annotated[str, typer.Argument(help="The group whose dead letters to use.")]
IdsOption = Annotated[
    list[str] | None,
    typer.Option("--id", help="Entry id (repeatable); see `tidings dlq list`.", show_default=False),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every entry of the group.")]


def _local(moment: datetime) -> str:
    return moment.astimezone().isoformat(timespec="seconds")


def _choice(ids: list[str] | None, every: bool) -> list[str] | None:
    """The entry ids chosen, or None for all; a usage error unless exactly one was given."""
    if every and ids:
        raise typer.BadParameter("give --id or --all, not both", param_hint="'--id' / '--all'")
    if not every and not ids:
        raise typer.BadParameter(
            "give the entries with --id ID (repeatable), or --all", param_hint="'--id' / '--all'"
        )
    return None if every else list(ids or [])


@dlq_app.command("list", no_args_is_help=True)
def list_(
    group: GroupArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most entries to show.")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Entries to skip.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
    url: UrlOption = None,
    name: NameOption = "tidings",
) -> None:
    """List the dead letters of GROUP, oldest first, with why each failed."""

    async def fetch() -> tuple[list[DeadLetter], int | None]:
        async with connect(url, name) as bus:
            entries = await bus.dead_letters(group).list(limit=limit, offset=offset)
            total = next((s.dead for s in await bus.stats() if s.group == group), None)
            return entries, total

    entries, total = run_async(fetch(), urls=[url]) or ([], None)
    if as_json:
        typer.echo(to_json([e.to_dict() for e in entries]))
        return
    console = stdout_console()
    if not entries:
        console.print(f"no dead letters in {group}" + (f" after {offset}" if offset else ""))
        return
    right = ("attempts",)
    result = table("entry", "event id", "type", "attempts", "last failed", "reason", right=right)
    for e in entries:
        result.add_row(
            Text(e.entry_id),
            Text(e.event_id or "-"),
            Text(e.type),
            str(e.attempts),
            _local(e.last_failed_at),
            Text(e.reason),
        )
    console.print(result)
    shown = f"{offset + 1}-{offset + len(entries)}" if offset else str(len(entries))
    of = f" of {total}" if total is not None and total != len(entries) else ""
    console.print(f"{shown}{of} dead letter(s) in {group}")


def _detail(entry: DeadLetter) -> Renderables:
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    rows = [
        ("entry", entry.entry_id),
        ("group", entry.group),
        ("event id", entry.event_id or "-"),
        ("type", entry.type),
        ("reason", entry.reason),
        ("exception", entry.exception_type or "-"),
        ("message", entry.message),
        ("attempts", str(entry.attempts)),
        ("first failed", _local(entry.first_failed_at)),
        ("last failed", _local(entry.last_failed_at)),
    ]
    for label, value in rows:
        fields.add_row(label, Text(value))
    parts: list[Any] = [fields, Text("\nenvelope", style="bold")]
    envelope = entry.envelope.attributes() if entry.envelope else None
    parts.append(JSON(to_json(envelope), indent=2))
    parts += [Text("\ndata", style="bold"), JSON(to_json(entry.data), indent=2)]
    if entry.traceback:
        parts += [Text("\ntraceback", style="bold"), Text(entry.traceback.rstrip())]
    return Renderables(*parts)


@dlq_app.command(no_args_is_help=True)
def show(
    group: GroupArgument,
    entry_id: Annotated[str, typer.Argument(help="The entry id (see `tidings dlq list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
    url: UrlOption = None,
    name: NameOption = "tidings",
) -> None:
    """Show one dead letter in full: reason, exception, traceback, envelope and data."""

    async def fetch() -> DeadLetter:
        async with connect(url, name) as bus:
            return await bus.dead_letters(group).get(entry_id)

    entry = run_async(fetch(), urls=[url])
    assert entry is not None
    if as_json:
        typer.echo(to_json(entry.to_dict()))
    else:
        stdout_console().print(_detail(entry))


@dlq_app.command("replay", no_args_is_help=True)
def replay_(
    group: GroupArgument,
    ids: IdsOption = None,
    every: AllOption = False,
    url: UrlOption = None,
    name: NameOption = "tidings",
) -> None:
    """Send dead letters back to GROUP (only), with their attempts reset."""
    chosen = _choice(ids, every)

    async def move() -> int:
        async with connect(url, name) as bus:
            return await bus.dead_letters(group).replay(chosen, all=chosen is None)

    count = run_async(move(), urls=[url]) or 0
    typer.echo(f"replayed {count} dead letter(s) to {group}")


@dlq_app.command(no_args_is_help=True)
def purge(
    group: GroupArgument,
    ids: IdsOption = None,
    every: AllOption = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before purging --all on a terminal.")
    ] = False,
    url: UrlOption = None,
    name: NameOption = "tidings",
) -> None:
    """Delete dead letters of GROUP for good."""
    chosen = _choice(ids, every)
    if chosen is None and not yes and sys.stdin.isatty():
        typer.confirm(f"Delete every dead letter of {group}?", abort=True)

    async def delete() -> int:
        async with connect(url, name) as bus:
            return await bus.dead_letters(group).purge(chosen, all=chosen is None)

    count = run_async(delete(), urls=[url]) or 0
    typer.echo(f"purged {count} dead letter(s) from {group}")
