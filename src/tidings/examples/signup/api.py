"""The sign-up API: creates the user, publishes ``user.created`` and answers at once.

It does not wait for the e-mail (2 s) or the points: those services catch up at their
own pace, and a sign-up succeeds even while one of them is down.
"""

from __future__ import annotations

from tidings import Bus

from .events import UserCreated

__all__ = ["make_user", "sign_up"]


def make_user(number: int) -> UserCreated:
    """The `number`-th sign-up of a run."""
    return UserCreated(
        user_id=f"user-{number:05d}", email=f"user{number}@example.com", name=f"User {number}"
    )


async def sign_up(bus: Bus, user: UserCreated) -> str:
    """Publish `user`'s creation; return its event id once the broker has it durably."""
    return await bus.publish(user, key=user.user_id)
