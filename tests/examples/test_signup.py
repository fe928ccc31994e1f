"""Sign-up: the API answers at once; while the e-mail service is down, sign-ups and
points go on, and the e-mails go out once it is back."""

from __future__ import annotations

import time
from typing import Any

from tests.support import eventually
from tidings.examples.plan import Settings
from tidings.examples.signup import create_bus
from tidings.examples.signup.api import make_user, sign_up, welcome_offer
from tidings.examples.signup.mailer import SEND_SECONDS
from tidings.examples.signup.points import WELCOME_POINTS

from .conftest import SETTLE, idle, keys_seen


async def test_signups_succeed_while_email_is_down(url: str, bus_options: dict[str, Any]) -> None:
    # Given the services declared, with only the points service running (e-mail is down)
    count = 30
    settings = Settings(time_scale=0.02)  # an e-mail takes 2 s * 0.02 = 40 ms
    bus = create_bus(url, settings, **bus_options)
    seen: dict[str, set[str]] = {}
    bus.subscribe("points.awarded", group="audit-points")(keys_seen(seen, "user_id"))
    bus.subscribe("email.sent", group="audit-email")(keys_seen(seen, "user_id"))
    users = [make_user(n) for n in range(1, count + 1)]
    ids = {u.user_id for u in users}
    await bus.start(groups=["points", "audit-points", "audit-email"])
    try:
        # When users sign up, the API answers without waiting for the 2 s e-mail
        started = time.monotonic()
        for user in users:
            await sign_up(bus, user)
        assert time.monotonic() - started < count * SEND_SECONDS * settings.time_scale

        # Then points are credited, and the e-mails wait in the email group's queue
        await eventually(lambda: seen.get("points.awarded") == ids, SETTLE, what="points")
        email = {s.group: s for s in await bus.stats()}["email"]
        assert email.ready == count and "email.sent" not in seen
    finally:
        await bus.close()

    # When the e-mail service is back (a new process would do the same)
    back = create_bus(url, settings, services=["email"], **bus_options)
    back.subscribe("email.sent", group="audit-email")(keys_seen(seen, "user_id"))
    async with back:
        # Then every welcome e-mail goes out, once per user
        await eventually(lambda: seen.get("email.sent") == ids, SETTLE, what="e-mails sent")
        await eventually(lambda: idle(back, ["email", "audit-email"]), SETTLE, what="idle")
        assert await back.dead_letters("email").list() == []


async def test_the_sign_up_page_asks_the_points_service_for_its_offer(
    url: str, bus_options: dict[str, Any]
) -> None:
    # Given the services declared and the page's publish-only bus, the points service down
    declared = create_bus(url, Settings(), consume=False, **bus_options)
    async with declared:
        # Then the page shows no offer rather than waiting on it
        assert await welcome_offer(declared, timeout=0.3) is None
        # When the points service is up, the page gets its offer
        points = create_bus(url, Settings(), services=["points"], **bus_options)
        async with points:
            assert await welcome_offer(declared, timeout=SETTLE) == WELCOME_POINTS
