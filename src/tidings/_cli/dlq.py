"""``tidings dlq``: list, show, group, replay and purge a group's dead letters.

Entry ids are printed whole everywhere (see `tidings._cli.output`) and may be given back
whole or as a unique prefix of at least 6 characters (see `tidings._cli.entry_ids`).
``groups`` and ``replay`` have modules of their own (`dlq_groups`, `dlq_replay`).
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Group as Renderables
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from .. import DeadLetter, DeadLetters
from .connection import connect
from .dlq_groups import groups
from .dlq_options import AllOption, GroupArgument, IdsOption, JsonOption
from .dlq_replay import replay
from .dlq_session import DlqSession, every_entry
from .entry_ids import MIN_PREFIX, resolve_entry_ids
from .helptext import TidingsCommand, TidingsGroup
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption
from .output import id_column, stdout_console, table, to_json

__all__ = ["dead_letters_table", "dlq_app"]

dlq_app = typer.Typer(
    cls=TidingsGroup,
    help="Inspect, group, replay and purge dead-letter queues.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

PoisonedOption = Annotated[
    bool,
    typer.Option(
        "--poisoned",
        help="Only poisoned entries: replayed poison_after times (the --app bus's, else 3) "
        "and failed again.",
    ),
]


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


def _replays(entry: DeadLetter) -> str:
    return f"{entry.replays} poisoned" if entry.poisoned else str(entry.replays)


def dead_letters_table(entries: list[DeadLetter], replays: bool = False) -> Table:
    """The ``tidings dlq list`` table: each entry id whole on one line (on a terminal 100
    columns wide too; the reason wraps instead). The event id is in ``show`` and ``--json``.

    A ``replays`` column (``2``, or ``3 poisoned``) is there when `replays` is true or an
    entry was replayed before, so a queue that never was keeps the room for the reason.
    """
    replays = replays or any(e.replays for e in entries)
    entry = id_column("entry", (e.entry_id for e in entries))
    columns = ["type", "attempts", *(["replays"] if replays else []), "last failed", "reason"]
    result = table(entry, *columns, right=("attempts",))
    for e in entries:
        last = e.last_failed_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        counts = [str(e.attempts), *([_replays(e)] if replays else [])]
        result.add_row(Text(e.entry_id), Text(e.type), *counts, last, Text(e.reason))
    return result


async def _poisoned(letters: DeadLetters, limit: int, offset: int) -> list[DeadLetter]:
    """A page of the poisoned entries (the queue is read until the page is full)."""
    found: list[DeadLetter] = []
    async for entry in every_entry(letters):
        if entry.poisoned:
            found.append(entry)
            if len(found) >= offset + limit:
                break
    return found[offset : offset + limit]


@dlq_app.command("list", cls=TidingsCommand, no_args_is_help=True)
def list_(
    group: GroupArgument,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most entries to show.")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Entries to skip.")] = 0,
    poisoned: PoisonedOption = False,
    as_json: JsonOption = False,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """List the dead letters of GROUP, oldest first, with why each failed."""
    session = DlqSession.from_options(app, url, name, management_url)

    async def fetch() -> tuple[list[DeadLetter], int | None]:
        async with connect(session.broker) as bus:
            letters = session.letters_of(bus, group)
            if poisoned:
                return await _poisoned(letters, limit, offset), None
            entries = await letters.list(limit=limit, offset=offset)
            total = next((s.dead for s in await bus.stats() if s.group == group), None)
            return entries, total

    entries, total = session.run(fetch()) or ([], None)
    if as_json:
        typer.echo(to_json([e.to_dict() for e in entries]))
        return
    console = stdout_console()
    kind = "poisoned dead letter" if poisoned else "dead letter"
    if not entries:
        console.print(f"no {kind}s in {group}" + (f" after {offset}" if offset else ""))
        return
    console.print(dead_letters_table(entries, replays=poisoned))
    shown = f"{offset + 1}-{offset + len(entries)}" if offset else str(len(entries))
    of = f" of {total}" if total is not None and total != len(entries) else ""
    console.print(f"{shown}{of} {kind}(s) in {group}")


def _history(entry: DeadLetter) -> Table:
    """Each time the event landed in the queue: when, after how many attempts, and why."""
    lines = Table.grid(padding=(0, 2))
    lines.add_column(no_wrap=True)
    lines.add_column(justify="right", no_wrap=True)
    lines.add_column(overflow="fold")
    for failure in entry.history:
        why = f"{failure.exception_type or '-'}: {failure.message}"
        after = "replayed" if failure.replayed else "published"
        lines.add_row(
            _local(failure.at), f"{failure.attempts} attempt(s)", Text(f"{why} ({after})")
        )
    return lines


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
        ("replays", _replays(entry)),
    ]
    for label, value in rows:
        fields.add_row(label, Text(value))
    parts: list[Any] = [fields, Text("\nhistory", style="bold"), _history(entry)]
    parts.append(Text("\nenvelope", style="bold"))
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
    """Show one dead letter in full: reason, exception, history, traceback, envelope, data."""
    entry = DlqSession.from_options(app, url, name, management_url).entry(group, entry_id)
    if as_json:
        typer.echo(to_json(entry.to_dict()))
    else:
        stdout_console().print(_detail(entry))


# In the order `tidings dlq --help` lists them: list, show, groups, replay, purge.
dlq_app.command("groups", cls=TidingsCommand, no_args_is_help=True)(groups)
dlq_app.command("replay", cls=TidingsCommand, no_args_is_help=True)(replay)


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
    session = DlqSession.from_options(app, url, name, management_url)
    if chosen is None and not yes and sys.stdin.isatty():
        typer.confirm(f"Delete every dead letter of {group}?", abort=True)

    async def act() -> int:
        async with session.dead_letters(group) as letters:
            if chosen is None:
                return await letters.purge(all=True)
            entries = await resolve_entry_ids(letters, chosen)
            return await letters.purge([e.entry_id for e in entries])

    count = session.run(act()) or 0
    typer.echo(f"purged {count} dead letter(s) from {group}")
