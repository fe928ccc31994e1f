"""The sign-up flow's events."""

from __future__ import annotations

from tidings import Command, Event

__all__ = ["EmailSent", "PointsAwarded", "PointsQuoted", "QuotePoints", "UserCreated"]


class UserCreated(Event, type="user.created", version=1):
    """A user signed up (published by the sign-up API)."""

    user_id: str
    email: str
    name: str


class EmailSent(Event, type="email.sent", version=1):
    """The welcome e-mail went out (an outcome event)."""

    user_id: str
    email: str


class PointsAwarded(Event, type="points.awarded", version=1):
    """The points service credited the welcome points (an outcome event)."""

    user_id: str
    points: int


class QuotePoints(Command, type="points.quote", version=1):
    """A request to the points service: the welcome points a sign-up gets now (the sign-up
    page shows them)."""


class PointsQuoted(Event, type="points.quoted", version=1):
    """The points service's reply to `QuotePoints`."""

    points: int
