"""``tidings dlq replay``: send dead letters back to their group, optionally fixed first.

Entries are chosen by id (``--id``, repeatable), all at once (``--all``, which leaves
poisoned entries alone unless ``--include-poisoned``), or by failure group
(``--failure-group``). One entry given by id may have its data fixed on the way: an RFC 7386
merge patch (``--patch``) or the user's editor (``--edit``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from .. import DeadLetters
from .._core.merge_patch import merge_patch
from .dlq_edit import EditFailed, NothingToReplay, edit_in_editor
from .dlq_groups import failure_group
from .dlq_options import AllOption, GroupArgument, IdsOption
from .dlq_session import DlqSession, every_entry
from .entry_ids import MIN_PREFIX, resolve_entry_ids
from .errors import fail
from .options import AppOption, ManagementUrlOption, NameOption, UrlOption

__all__ = ["replay"]

IncludePoisonedOption = Annotated[
    bool,
    typer.Option(
        "--include-poisoned",
        help="With --all: replay poisoned entries too (entries that failed again after "
        "being replayed poison_after times; --all leaves them in the queue otherwise).",
    ),
]
FailureGroupOption = Annotated[
    str | None,
    typer.Option(
        "--failure-group",
        metavar="SIGNATURE",
        help="Every entry of one failure group: its signature in `tidings dlq groups`, or a "
        f"unique prefix of at least {MIN_PREFIX} characters.",
        show_default=False,
    ),
]
PatchOption = Annotated[
    str | None,
    typer.Option(
        "--patch",
        metavar="JSON",
        help="With one --id: an RFC 7386 JSON merge patch applied to the data before it is "
        'sent, e.g. \'{"total": "12.50", "coupon": null}\' (null removes a member).',
        show_default=False,
    ),
]
EditOption = Annotated[
    bool,
    typer.Option(
        "--edit",
        help="With one --id: edit the data as JSON in $EDITOR (default vi) before it is "
        "sent; a file left empty or unchanged replays nothing.",
    ),
]

Edit = Callable[[Any], Any]


def _check(
    ids: list[str] | None,
    every: bool,
    group_signature: str | None,
    include_poisoned: bool,
    patch: str | None,
    edit: bool,
) -> None:
    """A usage error (status 2) unless the options choose entries one way, and fit it."""
    hint = "'--id' / '--all' / '--failure-group'"
    ways = [bool(ids), every, group_signature is not None]
    if sum(ways) != 1:
        raise typer.BadParameter(
            "give the entries with one of --id ID (repeatable), --all or --failure-group SIGNATURE",
            param_hint=hint,
        )
    if include_poisoned and not every:
        raise typer.BadParameter(
            "--include-poisoned goes with --all (entries chosen by --id or --failure-group "
            "are replayed, poisoned or not)",
            param_hint="'--include-poisoned'",
        )
    if patch is not None and edit:
        raise typer.BadParameter("give --patch or --edit, not both", param_hint="'--patch'")
    if (patch is not None or edit) and len(ids or []) != 1:
        raise typer.BadParameter(
            "--patch and --edit fix one entry: give exactly one --id", param_hint="'--id'"
        )


def _patch_of(text: str) -> Edit:
    """The edit that applies the merge patch `text`; not JSON ends the command (status 2)."""
    try:
        patch = json.loads(text)
    except (ValueError, RecursionError) as exc:
        fail(f"--patch is not JSON: {exc}", code=2)
    return lambda data: merge_patch(data, patch)


def _edited(session: DlqSession, group: str, given: str) -> tuple[str, Edit] | None:
    """The entry `given` names and its data as edited in the editor; None when nothing is
    to be replayed (said on stdout)."""
    entry = session.entry(group, given)
    if entry.envelope is None:
        fail(f"dead letter {entry.entry_id} cannot be edited: its body could not be decoded")
    try:
        data = edit_in_editor(entry.data)
    except NothingToReplay as exc:
        typer.echo(f"nothing replayed: {exc}")
        return None
    except EditFailed as exc:
        fail(f"{exc}; nothing replayed", code=exc.code)
    return entry.entry_id, lambda _: data


async def _poisoned_left(letters: DeadLetters) -> int:
    """How many poisoned entries the queue holds."""
    return sum([entry.poisoned async for entry in every_entry(letters)])


def replay(
    group: GroupArgument,
    ids: IdsOption = None,
    every: AllOption = False,
    include_poisoned: IncludePoisonedOption = False,
    group_signature: FailureGroupOption = None,
    patch: PatchOption = None,
    edit: EditOption = False,
    app: AppOption = None,
    url: UrlOption = None,
    name: NameOption = None,
    management_url: ManagementUrlOption = None,
) -> None:
    """Send dead letters back to GROUP (only), with their attempts reset.

    Choose them with `--id` (repeatable), `--all` (poisoned entries stay unless
    `--include-poisoned`) or `--failure-group` (see `tidings dlq groups`). Fix one entry's
    data on the way with `--id ID --patch JSON` or `--id ID --edit`.
    """
    _check(ids, every, group_signature, include_poisoned, patch, edit)
    change = _patch_of(patch) if patch is not None else None
    session = DlqSession.from_options(app, url, name, management_url)
    chosen = list(ids or [])
    if edit:
        edited = _edited(session, group, chosen[0])
        if edited is None:
            return
        chosen, change = [edited[0]], edited[1]

    async def act() -> tuple[int, int]:
        async with session.dead_letters(group) as letters:
            if every:
                moved = await letters.replay(all=True, include_poisoned=include_poisoned)
                return moved, 0 if include_poisoned else await _poisoned_left(letters)
            if group_signature is not None:
                entry_ids = (await failure_group(letters, group_signature)).entry_ids
            else:
                entry_ids = [e.entry_id for e in await resolve_entry_ids(letters, chosen)]
            return await letters.replay(entry_ids, edit=change), 0

    moved, left = session.run(act()) or (0, 0)
    message = f"replayed {moved} dead letter(s) to {group}"
    if left:
        message += f"; {left} poisoned left in the queue (--include-poisoned replays them too)"
    typer.echo(message)
