"""One timer for the deadlines of every send under way (`_publisher._Deadlines`): a send past
its deadline has its unanswered outcomes cancelled and is marked expired; a send that ended
is never touched; a send added later with an earlier deadline (a retry keeps its first
deadline) is not held up behind the others."""

import asyncio
import time

from tests.support import eventually
from tidings.transports.rabbitmq._publisher import _Deadlines, _Expiry


def send(loop: asyncio.AbstractEventLoop, seconds: float) -> _Expiry:
    return _Expiry([loop.create_future(), loop.create_future()], time.monotonic() + seconds)


async def test_only_sends_past_their_deadline_expire():
    loop = asyncio.get_running_loop()
    deadlines = _Deadlines()
    # Given a send that ends in time, one that does not, and one far from its deadline
    ended, late, patient = send(loop, 0.05), send(loop, 0.1), send(loop, 60)
    for expiry in (ended, late, patient):
        deadlines.add(expiry)
    ended.futures[0].set_result(True)
    deadlines.discard(ended)
    # When the late one's deadline passes
    await eventually(lambda: late.expired, 5, "the late send expired")
    # Then its outcomes are cancelled, and the others are left alone
    assert all(f.cancelled() for f in late.futures)
    assert not ended.expired and not ended.futures[1].done()
    assert not patient.expired and not any(f.done() for f in patient.futures)


async def test_an_earlier_deadline_added_later_is_kept():
    loop = asyncio.get_running_loop()
    deadlines = _Deadlines()
    # Given a send with a long deadline watched first
    patient = send(loop, 60)
    deadlines.add(patient)
    # When a send with a short deadline joins
    retry = send(loop, 0.05)
    deadlines.add(retry)
    # Then the short one expires on its own deadline, not the long one's
    await eventually(lambda: retry.expired, 5, "the retried send expired")
    assert not patient.expired
