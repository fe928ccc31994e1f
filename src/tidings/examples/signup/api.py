"""The sign-up API: creates the user, publishes ``user.created`` and answers at once.

It does not wait for the e-mail (2 s) or the points: those services catch up at their
own pace, and a sign-up succeeds even while one of them is down. The sign-up page asks the
points service what a sign-up gets now (`welcome_offer`, a request with a short timeout)
and shows no offer when it does not answer in time.
"""

from __future__ import annotations

from tidings import Bus, RequestTimeout

from .events import PointsQuoted, QuotePoints, UserCreated

__all__ = ["make_user", "sign_up", "welcome_offer"]


def make_user(number: int) -> UserCreated:
    """The `number`-th sign-up of a run."""
    return UserCreated(
        user_id=f"user-{number:05d}", email=f"user{number}@example.com", name=f"User {number}"
    )


async def sign_up(bus: Bus, user: UserCreated) -> str:
    """Publish `user`'s creation; return its event id once the broker has it durably."""
    return await bus.publish(user, key=user.user_id)


async def welcome_offer(bus: Bus, timeout: float = 2.0) -> int | None:
    """The welcome points the points service offers now, or None when it does not answer
    within `timeout` seconds (the page then shows no offer; the sign-up works anyway)."""
    try:
        quoted = await bus.request(QuotePoints(), to="points", timeout=timeout)
    except RequestTimeout:
        return None
    assert isinstance(quoted, PointsQuoted)
    return quoted.points
