"""Sign-up: the API answers at once; e-mail and points catch up, even after an outage.

The sign-up *api* publishes ``user.created`` and returns. The *email* service (about 2 s
per message, four at a time) sends the welcome e-mail; the *points* service credits the
welcome points. While the e-mail service is down, sign-ups still succeed and points are
still credited: ``user.created`` waits in the ``email`` group's queue, and the e-mails go
out once the service is back: the services are isolated from each other's faults, and
the queue levels the load.

Run the services with ``tidings run tidings.examples.signup.worker:bus`` (or one of them
with ``--group email``), or everything with ``tidings demo signup``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tidings import Bus, Context

from ..plan import Settings
from ..scenario import Scenario, Tracker, build_bus
from . import mailer, points
from .api import make_user, sign_up

__all__ = ["SERVICES", "SignupScenario", "create_bus"]

SERVICES = {"email": mailer.attach, "points": points.attach}


def create_bus(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    services: Iterable[str] = SERVICES,
    consume: bool = True,
    middleware: Iterable[Any] = (),
    name: str = "tidings",
    dedupe: str | None = None,
    **options: Any,
) -> Bus:
    """A bus on `url` with the sign-up `services` attached (all of them by default).

    Outcome events (``email.sent``, ``points.awarded``) may have no subscriber, hence
    ``on_unroutable="ignore"``.

    `name` (the bus namespace), `dedupe` (an external dedupe store such as
    ``redis://host:6379/0``, which the idempotent groups need on RabbitMQ) and `options`
    (transport options, e.g. ``management_url``) go to `Bus` unchanged.
    """
    return build_bus(
        url,
        settings or Settings(),
        {name: SERVICES[name] for name in services},
        consume=consume,
        middleware=middleware,
        name=name,
        dedupe=dedupe,
        **options,
    )


class SignupScenario(Scenario):
    """``tidings demo signup``."""

    name = "signup"
    unit = "sign-ups"
    default_count = 40
    groups = ("email", "points")
    worker = "tidings.examples.signup.worker:bus"
    outcome_types = ("email.sent", "points.awarded")

    def create_bus(
        self,
        url: str | None,
        settings: Settings,
        *,
        consume: bool = True,
        middleware: Iterable[Any] = (),
        **options: Any,
    ) -> Bus:
        return create_bus(url, settings, consume=consume, middleware=middleware, **options)

    async def publish(self, bus: Bus, number: int, settings: Settings, tracker: Tracker) -> None:
        user = make_user(number)
        tracker.published(user.user_id)
        await sign_up(bus, user)

    def track(
        self, event_type: str, data: Mapping[str, Any], ctx: Context, tracker: Tracker
    ) -> None:
        user_id = str(data["user_id"])
        if event_type == "email.sent":
            tracker.saw("emailed", user_id, final=True)
        else:
            tracker.saw("points", user_id)

    def done(self, tracker: Tracker) -> int:
        return len(tracker.keys("emailed") & tracker.keys("points"))

    def finished(self, tracker: Tracker, count: int, dead: Mapping[str, int]) -> bool:
        return self.done(tracker) + sum(dead.values()) >= count

    def summary(self, tracker: Tracker, count: int, dead: Mapping[str, int]) -> dict[str, int]:
        return {
            "signups": count,
            "emailed": tracker.count("emailed"),
            "points_awarded": tracker.count("points"),
            "dead_lettered": sum(dead.values()),
        }

    def expected(self, settings: Settings, count: int) -> dict[str, int]:
        return {"signups": count, "emailed": count, "points_awarded": count, "dead_lettered": 0}

    def describe(self, counts: Mapping[str, int]) -> str:
        return (
            f"{counts['signups']} sign-ups answered at once; {counts['emailed']} welcome "
            f"e-mails sent and {counts['points_awarded']} welcome points credited "
            f"afterwards, {counts['dead_lettered']} dead-lettered."
        )
