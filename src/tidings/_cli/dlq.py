"""``tidings dlq``: list, show, replay and purge a group's dead letters.

Entry ids are printed whole everywhere (see `tidings._cli.output`) and may be given back
whole or as a unique prefix of at least 6 characters (see `tidings._cli.entry_ids`).
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Group as Renderables
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from .. import DeadLetter
from .connection import Broker, connect, inspected_broker
from .entry_ids import MIN_PREFIX, AmbiguousPrefix, resolve_entry_ids
from .errors import run_async
from .helptext import TidingsCommand, TidingsGroup
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption
from .output import id_column, stdout_console, table, to_json

__all__ = ["dead_letters_table", "dlq_app"]

T = TypeVar("T")

dlq_app = typer.Typer(
    cls=TidingsGroup,
    help="Inspect, replay and purge dead-letter queues.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

GroupArgument = Annotated[
    str, typer.Argument(metavar="GROUP", help="The group whose dead letters to use.")
]
IdsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--id",
        metavar="ID",
        help=f"Entry id, or a unique prefix of at least {MIN_PREFIX} characters "
        "(repeatable); see `tidings dlq list`.",
        show_default=False,
    ),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every entry of the group.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


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


def _run(coro: Coroutine[Any, Any, T], broker: Broker) -> T | None:
    """`run_async`, with an ambiguous id prefix ending the command with status 2."""
    try:
        return run_async(coro, urls=broker.secrets)
    except AmbiguousPrefix as exc:
        exc.exit()


def dead_letters_table(entries: list[DeadLetter]) -> Table:
    """The ``tidings dlq list`` table: each entry id whole on one line (on a terminal 100
    columns wide too; the reason wraps instead). The event id is in ``show`` and ``--json``."""
    entry = id_column("entry", (e.entry_id for e in entries))
    result = table(entry, "type", "attempts", "last failed", "reason", right=("attempts",))
    for e in entries:
        last = e.last_failed_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        result.add_row(Text(e.entry_id), Text(e.type), str(e.attempts), last, Text(e.reason))
    return result


@dlq_app.command("list", cls=TidingsCommand, no_args_is_help=True)
def list_(
    group: GroupArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most entries to show.")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Entries to skip.")] = 0,
    as_json: JsonOption = False,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """List the dead letters of GROUP, oldest first, with why each failed."""
    broker = inspected_broker(app, url, name, management_url)

    async def fetch() -> tuple[list[DeadLetter], int | None]:
        async with connect(broker) as bus:
            entries = await bus.dead_letters(group).list(limit=limit, offset=offset)
            total = next((s.dead for s in await bus.stats() if s.group == group), None)
            return entries, total

    entries, total = _run(fetch(), broker) or ([], None)
    if as_json:
        typer.echo(to_json([e.to_dict() for e in entries]))
        return
    console = stdout_console()
    if not entries:
        console.print(f"no dead letters in {group}" + (f" after {offset}" if offset else ""))
        return
    console.print(dead_letters_table(entries))
    shown = f"{offset + 1}-{offset + len(entries)}" if offset else str(len(entries))
    of = f" of {total}" if total is not None and total != len(entries) else ""
    console.print(f"{shown}{of} dead letter(s) in {group}")


def _detail(entry: DeadLetter) -> Renderables:
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")
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


@dlq_app.command(cls=TidingsCommand, no_args_is_help=True)
def show(
    group: GroupArgument,
    entry_id: Annotated[
        str,
        typer.Argument(
            metavar="ENTRY_ID",
            help=f"The entry id, or a unique prefix of at least {MIN_PREFIX} characters "
            "(see `tidings dlq list`).",
        ),
    ],
    as_json: JsonOption = False,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """Show one dead letter in full: reason, exception, traceback, envelope and data."""
    broker = inspected_broker(app, url, name, management_url)

    async def fetch() -> DeadLetter:
        async with connect(broker) as bus:
            [entry] = await resolve_entry_ids(bus.dead_letters(group), [entry_id])
            return entry

    entry = _run(fetch(), broker)
    assert entry is not None
    if as_json:
        typer.echo(to_json(entry.to_dict()))
    else:
        stdout_console().print(_detail(entry))


def _act_on_entries(
    broker: Broker, group: str, chosen: list[str] | None, action: Literal["replay", "purge"]
) -> int:
    """Replay or purge the entries `chosen` (whole ids or prefixes; None for all); return
    how many."""

    async def act() -> int:
        async with connect(broker) as bus:
            letters = bus.dead_letters(group)
            do = letters.replay if action == "replay" else letters.purge
            if chosen is None:
                return await do(all=True)
            entries = await resolve_entry_ids(letters, chosen)
            return await do([e.entry_id for e in entries])

    return _run(act(), broker) or 0


@dlq_app.command("replay", cls=TidingsCommand, no_args_is_help=True)
def replay_(
    group: GroupArgument,
    ids: IdsOption = None,
    every: AllOption = False,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """Send dead letters back to GROUP (only), with their attempts reset."""
    chosen = _choice(ids, every)
    broker = inspected_broker(app, url, name, management_url)

    count = _act_on_entries(broker, group, chosen, "replay")
    typer.echo(f"replayed {count} dead letter(s) to {group}")


@dlq_app.command(cls=TidingsCommand, no_args_is_help=True)
def purge(
    group: GroupArgument,
    ids: IdsOption = None,
    every: AllOption = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before purging --all on a terminal.")
    ] = False,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """Delete dead letters of GROUP for good."""
    chosen = _choice(ids, every)
    broker = inspected_broker(app, url, name, management_url)
    if chosen is None and not yes and sys.stdin.isatty():
        typer.confirm(f"Delete every dead letter of {group}?", abort=True)

    count = _act_on_entries(broker, group, chosen, "purge")
    typer.echo(f"purged {count} dead letter(s) from {group}")
