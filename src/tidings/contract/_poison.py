"""Contract: dead letters keep their history; replayed failures become poison letters."""

from __future__ import annotations

__all__ = ["PoisonContract"]


class PoisonContract:
    """`DeadLetter.history`, `replays`, `poisoned` and `DeadLetters.groups()`."""
