"""``tidings outbox``: run the relay alone, and list, retry and purge what waits in a bus's
outbox (``Bus(database=...)``).

The outbox lives in the application's database, so every command takes the application:
``relay MODULE:bus`` runs it, the others inspect it with ``--app MODULE:bus`` (imported, never
started; nothing is created in the database). Dead messages are named by their event id, whole
or as a unique prefix of at least 6 characters (see `tidings._cli.outbox_session`).
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from .entry_ids import MIN_PREFIX
from .helptext import TidingsCommand, TidingsGroup
from .outbox_relay import relay
from .outbox_session import OutboxSession
from .output import id_column, stdout_console, table, to_json
from .queues import age_text

if TYPE_CHECKING:
    from ..outbox._admin import Entry, OutboxAdmin

__all__ = ["entries_table", "outbox_app"]

outbox_app = typer.Typer(
    cls=TidingsGroup,
    help="Run the outbox relay; list, retry and purge the messages waiting in an outbox.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

RequiredAppOption = Annotated[
    str,
    typer.Option(
        "--app",
        metavar="MODULE:BUS",
        help="The application whose outbox to inspect: its bus's database and name are used "
        "(the module is imported, not started). A dotted module or a file path, e.g. "
        "shop:bus, path/to/app.py:bus.",
        show_default=False,
    ),
]
IdsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--id",
        metavar="ID",
        help=f"A dead message's event id, or a unique prefix of at least {MIN_PREFIX} "
        "characters (repeatable; see `tidings outbox list --dead`).",
        show_default=False,
    ),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every dead message of the outbox.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]

# In the order `tidings outbox --help` lists them: relay, list, retry, purge.
outbox_app.command("relay", cls=TidingsCommand, no_args_is_help=True)(relay)


def _status(entry: Entry, now: float) -> str:
    if entry.state != "pending":
        return entry.state
    if entry.leased_until is not None and entry.leased_until > now:
        return "sending"
    if entry.available_at > now:
        return f"waits {age_text(entry.available_at - now)}"
    return "due"


def entries_table(entries: list[Entry], now: float) -> Any:
    """The ``tidings outbox list`` table: each event id whole on one line; a ``status``
    column for pending messages (due, sending, or how long it waits after a failure)."""
    pending = any(e.state == "pending" for e in entries)
    ids = id_column("id", (e.event_id for e in entries))
    columns = ["type", "key", "attempts", "age", *(["status"] if pending else []), "reason"]
    result = table(ids, *columns, right=("attempts", "age"))
    for e in entries:
        what = e.type if e.group is None else f"{e.type} (to {e.group})"
        status = [_status(e, now)] if pending else []
        result.add_row(
            Text(e.event_id),
            Text(what),
            Text(e.key or "-"),
            str(e.attempts),
            age_text(e.age(now)),
            *status,
            Text(e.reason or "-"),
        )
    return result


def _as_dict(entry: Entry, now: float) -> dict[str, Any]:
    return {
        "id": entry.event_id,
        "row": entry.row,
        "type": entry.type,
        "key": entry.key,
        "to": entry.group,
        "state": entry.state,
        "status": _status(entry, now),
        "attempts": entry.attempts,
        "age": round(entry.age(now), 3),
        "created_at": datetime.fromtimestamp(entry.created_at).astimezone().isoformat(),
        "reason": entry.reason or None,
    }


@outbox_app.command("list", cls=TidingsCommand)
def list_(
    app: RequiredAppOption,
    dead: Annotated[bool, typer.Option("--dead", help="The dead messages instead.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Most messages to show.")
    ] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Messages to skip.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """List the messages waiting in the outbox (or the dead ones), oldest first: id, type,
    key, attempts, age and the reason of the last failure."""
    session = OutboxSession.load(app)

    async def fetch(admin: OutboxAdmin) -> tuple[list[Entry], int]:
        read = admin.list_dead if dead else admin.list_pending
        entries = await read(limit=limit, offset=offset)
        stats = await admin.stats()
        return entries, stats.dead if dead else stats.pending

    entries, total = session.run(fetch)
    now = session.bus.clock.time()
    if as_json:
        typer.echo(to_json([_as_dict(e, now) for e in entries]))
        return
    console = stdout_console()
    kind = "dead" if dead else "pending"
    where = f"the outbox of bus {session.name!r}"
    if not entries:
        console.print(f"no {kind} messages in {where}" + (f" after {offset}" if offset else ""))
        return
    console.print(entries_table(entries, now))
    shown = f"{offset + 1}-{offset + len(entries)}" if offset else str(len(entries))
    of = f" of {total}" if total != len(entries) else ""
    console.print(f"{shown}{of} {kind} message(s) in {where}")


def _choice(ids: list[str] | None, every: bool) -> list[str] | None:
    """The ids chosen, or None for all; a usage error unless exactly one was given."""
    if every and ids:
        raise typer.BadParameter("give --id or --all, not both", param_hint="'--id' / '--all'")
    if not every and not ids:
        raise typer.BadParameter(
            "give the messages with --id ID (repeatable), or --all", param_hint="'--id' / '--all'"
        )
    return None if every else list(ids or [])


@outbox_app.command(cls=TidingsCommand, no_args_is_help=True)
def retry(app: RequiredAppOption, ids: IdsOption = None, every: AllOption = False) -> None:
    """Make dead messages pending again, attempts reset: the relay sends them."""
    chosen = _choice(ids, every)
    session = OutboxSession.load(app)

    async def act(admin: OutboxAdmin) -> int:
        return await admin.retry_dead(await session.rows(admin, chosen))

    count = session.run(act)
    typer.echo(f"retried {count} dead message(s) in the outbox of bus {session.name!r}")


@outbox_app.command(cls=TidingsCommand, no_args_is_help=True)
def purge(
    app: RequiredAppOption,
    ids: IdsOption = None,
    every: AllOption = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before purging --all on a terminal.")
    ] = False,
) -> None:
    """Delete dead messages from the outbox for good."""
    chosen = _choice(ids, every)
    session = OutboxSession.load(app)
    if chosen is None and not yes and sys.stdin.isatty():
        question = f"Delete every dead message of the outbox of bus {session.name!r}?"
        typer.confirm(question, abort=True)

    async def act(admin: OutboxAdmin) -> int:
        return await admin.purge_dead(await session.rows(admin, chosen))

    count = session.run(act)
    typer.echo(f"purged {count} dead message(s) from the outbox of bus {session.name!r}")
