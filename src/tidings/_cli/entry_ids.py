"""Dead-letter entry ids as a user types them: whole, or a unique prefix.

An id that names no entry is looked up as a prefix of at least `MIN_PREFIX` characters
among the group's entries. A prefix that matches several entries is `AmbiguousPrefix`
(the command exits with status 2 and lists them); one that matches none is
`DeadLetterNotFound` (one ``error:`` line, status 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import typer

from .. import DeadLetter, DeadLetterNotFound, DeadLetters

__all__ = ["MIN_PREFIX", "AmbiguousPrefix", "resolve_entry_ids"]

MIN_PREFIX = 6
_PAGE = 500
_SHOWN = 10  # candidates listed for an ambiguous prefix


class AmbiguousPrefix(Exception):
    """An id prefix that starts several entry ids of the group."""

    def __init__(self, prefix: str, group: str, matches: list[str]) -> None:
        super().__init__(prefix)
        self.prefix, self.group, self.matches = prefix, group, matches

    def exit(self) -> NoReturn:
        """Say so in one line, naming the candidates, and exit with status 2 (usage)."""
        shown = ", ".join(self.matches[:_SHOWN])
        more = f" and {len(self.matches) - _SHOWN} more" if len(self.matches) > _SHOWN else ""
        typer.echo(
            f"error: {self.prefix!r} is the start of {len(self.matches)} dead letters in "
            f"{self.group}: {shown}{more}; give more of the id",
            err=True,
        )
        raise typer.Exit(2)


async def _all_ids(letters: DeadLetters) -> list[str]:
    """Every entry id of the group, oldest first."""
    ids: list[str] = []
    while True:
        page = await letters.list(limit=_PAGE, offset=len(ids))
        ids += [e.entry_id for e in page]
        if len(page) < _PAGE:
            return ids


async def resolve_entry_ids(letters: DeadLetters, given: Sequence[str]) -> list[DeadLetter]:
    """The entries `given` names (whole ids or unique prefixes), in the order given.

    Raises:
        DeadLetterNotFound: an id that is no entry's id nor the start of one.
        AmbiguousPrefix: a prefix that starts several entry ids.
    """
    found: list[DeadLetter] = []
    everyone: list[str] | None = None
    hint = f"see tidings dlq list {letters.group}"
    for wanted in given:
        exact = await _exact(letters, wanted)
        if exact is not None:
            found.append(exact)
            continue
        if len(wanted) < MIN_PREFIX:
            raise DeadLetterNotFound(
                f"no dead letter {wanted!r} in {letters.group} (give the whole entry id, "
                f"or at least {MIN_PREFIX} characters of it; {hint})"
            )
        everyone = everyone if everyone is not None else await _all_ids(letters)
        matches = [entry_id for entry_id in everyone if entry_id.startswith(wanted)]
        if not matches:
            raise DeadLetterNotFound(f"no dead letter {wanted!r} in {letters.group} ({hint})")
        if len(matches) > 1:
            raise AmbiguousPrefix(wanted, letters.group, matches)
        found.append(await letters.get(matches[0]))
    return found


async def _exact(letters: DeadLetters, entry_id: str) -> DeadLetter | None:
    """The entry whose whole id is `entry_id`, if there is one."""
    try:
        return await letters.get(entry_id)
    except DeadLetterNotFound:
        return None
