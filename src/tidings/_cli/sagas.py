"""``tidings sagas``: list a saga's instances, show one (state, history, pending timeouts).

The instances live in the application's database: the ``database`` of the ``--app`` bus
(imported, never started), under that bus's name, or the database ``--database URL`` names
(under ``--name``, default ``tidings``). Reading never creates a database file.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.json import JSON

from .. import ConfigError
from .errors import one_line_errors, run_async
from .helptext import TidingsCommand, TidingsGroup
from .options import AppOption, NameOption
from .output import id_column, stdout_console, table, to_json
from .target import load_bus

if TYPE_CHECKING:
    from ..sagas import SagaInstance

__all__ = ["sagas_app"]

T = TypeVar("T")

sagas_app = typer.Typer(
    cls=TidingsGroup,
    help="Inspect saga instances: their status, state, history and pending timeouts.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

SagaArgument = Annotated[str, typer.Argument(help="The saga's name (Saga name=...).")]
KeyArgument = Annotated[str, typer.Argument(help="The instance's key.")]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        metavar="URL",
        help="The application's database (an async SQLAlchemy URL, e.g. "
        "sqlite+aiosqlite:///app.db). Default: the --app bus's database.",
        show_default=False,
    ),
]
StatusOption = Annotated[
    str | None, typer.Option("--status", metavar="STATUS", help="Only instances with this status.")
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Most instances listed.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _where(app: str | None, database: str | None, name: str | None) -> tuple[Any, str, str]:
    """The engine, the bus name and a description of the database the options name."""
    from ..outbox._database import Database

    if database:
        _no_new_file(database)
        engine = Database(database).engine
        return engine, name or "tidings", "--database"
    if not app:
        raise ConfigError(
            "say where the sagas are: --app MODULE:bus (a bus with a database) or --database URL"
        )
    bus = load_bus(app)
    if bus.database is None:
        raise ConfigError(
            f"bus {bus.name!r} ({app}) has no database, so no sagas: Bus(database=...)"
        )
    _no_new_file(bus.database.url.render_as_string(hide_password=False))
    return bus.database, name or bus.name, app


def _no_new_file(url: str) -> None:
    """Refuse a SQLite database file that does not exist (reading would create it)."""
    head, _, path = url.partition(":///")
    if head.startswith("sqlite") and path and not path.startswith(":memory:"):
        file = Path(path.split("?", 1)[0])
        if not file.is_file():
            raise ConfigError(f"no database file at {file}")


def _run(
    app: str | None,
    database: str | None,
    name: str | None,
    work: Callable[[Any, str], Coroutine[Any, Any, T]],
) -> T:
    with one_line_errors(urls=[database]):
        engine, bus_name, _origin = _where(app, database, name)

    async def go() -> tuple[T]:
        try:
            return (await work(engine, bus_name),)
        finally:
            await engine.dispose()

    done = run_async(go(), urls=[database])
    if done is None:  # interrupted
        raise typer.Exit(130)
    return done[0]


def _time(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _summary(instance: SagaInstance) -> dict[str, Any]:
    return {
        "key": instance.key,
        "status": instance.status,
        "version": instance.version,
        "started_at": _time(instance.started_at),
        "updated_at": _time(instance.updated_at),
        "completed_at": None if instance.completed_at is None else _time(instance.completed_at),
    }


def _details(instance: SagaInstance) -> dict[str, Any]:
    return {
        **_summary(instance),
        "state": instance.state,
        "timeouts": [
            {"token": token, "type": t.type, "due": _time(t.due)}
            for token, t in instance.timeouts.items()
        ],
        "history": [{**h, "at": _time(h.get("at"))} for h in instance.history],
    }


@sagas_app.command("list", cls=TidingsCommand)
def list_instances(
    saga: SagaArgument,
    status: StatusOption = None,
    app: AppOption = None,
    database: DatabaseOption = None,
    name: NameOption = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """List the instances of SAGA (oldest first), with their status."""

    async def work(engine: Any, bus: str) -> list[SagaInstance]:
        from ..sagas import list_instances as read

        return await read(engine, saga, bus=bus, status=status, limit=limit)

    found = _run(app, database, name, work)
    if as_json:
        typer.echo(to_json([_summary(i) for i in found]))
        return
    console = stdout_console()
    if not found:
        which = f" with status {status!r}" if status else ""
        console.print(f"no {saga} instances{which}", markup=False)
        return
    shown = table(
        id_column("key", [i.key for i in found]),
        "status",
        "version",
        "started",
        "updated",
        "completed",
        right=("version",),
    )
    for i in found:
        row = _summary(i)
        shown.add_row(
            i.key,
            i.status,
            str(i.version),
            row["started_at"],
            row["updated_at"],
            row["completed_at"] or "-",
        )
    console.print(shown)


@sagas_app.command("show", cls=TidingsCommand)
def show_instance(
    saga: SagaArgument,
    key: KeyArgument,
    app: AppOption = None,
    database: DatabaseOption = None,
    name: NameOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one instance of SAGA: its status, state, pending timeouts and history."""

    async def work(engine: Any, bus: str) -> SagaInstance | None:
        from ..sagas import get_instance

        return await get_instance(engine, saga, key, bus=bus)

    found = _run(app, database, name, work)
    if found is None:
        typer.echo(f"error: no {saga} instance with key {key!r}", err=True)
        raise typer.Exit(1)
    data = _details(found)
    if as_json:
        typer.echo(to_json(data))
        return
    console = stdout_console()
    done = f", completed {data['completed_at']}" if found.completed else ""
    console.print(
        f"{saga} {found.key}: {found.status} (version {found.version}, "
        f"started {data['started_at']}{done})",
        markup=False,
    )
    console.print("state:", JSON(to_json(found.state)))
    timeouts = table("token", "type", "due", title="pending timeouts")
    for t in data["timeouts"]:
        timeouts.add_row(t["token"], t["type"], t["due"])
    console.print(timeouts if data["timeouts"] else "pending timeouts: none")
    history = table("at", "event", "from", "to", title="history (oldest first)")
    for h in data["history"]:
        history.add_row(h["at"], str(h.get("event")), str(h.get("from") or "-"), str(h.get("to")))
    console.print(history)
