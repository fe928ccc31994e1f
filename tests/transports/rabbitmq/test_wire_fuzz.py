"""Whatever headers another producer sets, turning an AMQP delivery into a `Delivery` either
works, with sane bookkeeping, or raises `BadBookkeeping` (the consumer dead-letters it)."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

from aiormq.abc import DeliveredMessage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp.header import ContentHeader

from tidings.transports._failure import Failure
from tidings.transports.rabbitmq._dlq import dead_letter_headers
from tidings.transports.rabbitmq._wire import (
    H_ATTEMPT,
    H_DUE_AT,
    H_FIRST_FAILED,
    H_KEY,
    H_LAST_FAILED,
    H_NO_ID,
    H_REPLAYED,
    H_ROUTING_KEY,
    BadBookkeeping,
    copy_message,
    due_in,
    incoming_to_delivery,
    safe_delivery,
)

_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=12)
    | st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e999", "3", "2.5", " 7 ", "9" * 500])
    | st.decimals(allow_nan=True)
    | st.datetimes().map(datetime.isoformat)
    | st.just(datetime(2026, 1, 1))
    | st.just(Decimal("1.0"))
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
_NAMES = st.sampled_from(
    [H_ATTEMPT, H_DUE_AT, H_FIRST_FAILED, H_LAST_FAILED, H_KEY, H_ROUTING_KEY, H_REPLAYED]
    + [H_NO_ID, "ce-id", "x-other"]
)


def _message(headers: dict[str, object], redelivered: bool) -> DeliveredMessage:
    return DeliveredMessage(
        delivery=spec.Basic.Deliver(
            consumer_tag="c", delivery_tag=1, redelivered=redelivered, routing_key="a.b"
        ),
        header=ContentHeader(
            properties=spec.Basic.Properties(headers=headers, message_id="m-1"), body_size=2
        ),
        body=b"{}",
        channel=None,  # type: ignore[arg-type]
    )


@settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(_NAMES, _VALUES, max_size=6), st.booleans())
def test_any_headers_give_a_sane_delivery_or_bad_bookkeeping(headers, redelivered):
    message = _message(headers, redelivered)
    try:
        delivery = incoming_to_delivery("g", message, None)
    except BadBookkeeping:
        # what the consumer then does: dead-letter it as it is, which must work too
        delivery = safe_delivery("g", message, None)
        failure = Failure("bad", None, "bad", "", 1.0)
        copy_message(message, dead_letter_headers(delivery, failure))
        assert delivery.attempt == 1 and delivery.first_failed_at is None
        return
    assert isinstance(delivery.attempt, int) and delivery.attempt >= 1
    first = delivery.first_failed_at
    assert first is None or 0 <= first <= datetime(9999, 12, 31).timestamp() + 86400
    assert math.isfinite(due_in(message, 1000.0))
    assert all(isinstance(v, str) for v in delivery.headers.values())
