"""``tidings dlq groups``: a group's dead letters gathered by how they failed.

A failure signature may be given back whole or as a unique prefix of at least
`MIN_PREFIX` characters (``tidings dlq replay GROUP --failure-group 3f9c2a``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

import typer
from rich.table import Table
from rich.text import Text

from .. import DeadLetterNotFound, DeadLetters, FailureGroup
from .dlq_options import GroupArgument, JsonOption
from .dlq_session import DlqSession
from .entry_ids import MIN_PREFIX, AmbiguousPrefix
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption
from .output import id_column, stdout_console, table, to_json

__all__ = ["AmbiguousSignature", "failure_group", "failure_groups_table", "groups"]


class AmbiguousSignature(AmbiguousPrefix):
    """A signature prefix that starts the signatures of several failure groups."""

    def exit(self) -> NoReturn:
        """Say so in one line, naming the candidates, and exit with status 2 (usage)."""
        typer.echo(
            f"error: {self.prefix!r} is the start of {len(self.matches)} failure groups in "
            f"{self.group}: {', '.join(self.matches)}; give more of the signature",
            err=True,
        )
        raise typer.Exit(2)


async def failure_group(letters: DeadLetters, given: str) -> FailureGroup:
    """The failure group whose signature is `given`, or starts with it.

    Raises:
        DeadLetterNotFound: no signature is `given` or starts with it (a prefix shorter
            than `MIN_PREFIX` must be whole).
        AmbiguousSignature: several signatures start with `given`.
    """
    found = await letters.groups()
    hint = f"see tidings dlq groups {letters.group}"
    for group in found:
        if group.signature == given:
            return group
    if len(given) < MIN_PREFIX:
        raise DeadLetterNotFound(
            f"no failure group {given!r} in {letters.group} (give the whole signature, or "
            f"at least {MIN_PREFIX} characters of it; {hint})"
        )
    matches = [g for g in found if g.signature.startswith(given)]
    if not matches:
        raise DeadLetterNotFound(f"no failure group {given!r} in {letters.group} ({hint})")
    if len(matches) > 1:
        raise AmbiguousSignature(given, letters.group, [g.signature for g in matches])
    return matches[0]


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def failure_groups_table(found: list[FailureGroup]) -> Table:
    """The ``tidings dlq groups`` table: each signature whole on one line; a built-in
    exception without its ``builtins.`` (``--json`` has the qualified name)."""
    signature = id_column("signature", (g.signature for g in found))
    result = table(
        signature,
        "count",
        "exception",
        "handler",
        "top frame",
        "first seen",
        "last seen",
        right=("count",),
    )
    for g in found:
        result.add_row(
            Text(g.signature),
            str(g.count),
            Text((g.exception_type or "-").removeprefix("builtins.")),
            Text(g.handler or "-"),
            Text(g.top_frame or "-"),
            _local(g.first_seen),
            _local(g.last_seen),
        )
    return result


def groups(
    group: GroupArgument,
    as_json: JsonOption = False,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """Gather the dead letters of GROUP by how they failed, most entries first.

    Entries with the same exception type, handler and innermost traceback frame are one
    failure group: fix the bug it shows, then replay the whole group with `tidings dlq
    replay GROUP --failure-group SIGNATURE`. Give `--app` so the groups name their handler.
    """
    session = DlqSession.from_options(app, url, name, management_url)

    async def fetch() -> list[FailureGroup]:
        async with session.dead_letters(group) as letters:
            return await letters.groups()

    found = session.run(fetch()) or []
    if as_json:
        typer.echo(to_json([g.to_dict() for g in found]))
        return
    console = stdout_console()
    if not found:
        console.print(f"no dead letters in {group}")
        return
    console.print(failure_groups_table(found))
    entries = sum(g.count for g in found)
    console.print(f"{len(found)} failure group(s), {entries} dead letter(s) in {group}")
    if session.app_bus is None:
        console.print("handlers are named with --app MODULE:bus (the signatures include them)")
