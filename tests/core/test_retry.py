"""Retry policy: attempts, full-jitter back-off bounds, which errors are retried."""

from __future__ import annotations

import random

import pytest

from tidings import ConfigError, Permanent, Retry


def test_backoff_is_full_jitter_under_the_exponential_ceiling() -> None:
    retry = Retry(base=0.5, max_delay=4.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (50, 4.0)]:
        assert retry.ceiling(attempt) == ceiling
        delays = [retry.delay(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # full jitter spreads over the whole interval, not just near its top
        assert min(delays) < ceiling * 0.2 and max(delays) > ceiling * 0.8


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert Retry(max_delay=60.0).ceiling(10_000) == 60.0


class Declined(Exception):
    pass


def test_which_exceptions_are_retried() -> None:
    retry = Retry(on=(ValueError, Declined), never=(Declined,))
    assert retry.retryable(ValueError("x"))
    assert not retry.retryable(Declined())
    assert not retry.retryable(KeyError("not in on"))
    assert not retry.retryable(Permanent("stop"))
    assert not Retry().retryable(Permanent("always dead-letters"))
    assert Retry(on=ValueError).retryable(ValueError())  # a bare class is accepted


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base": -1.0}, {"max_delay": -2.0}])
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Retry(**kwargs)  # type: ignore[arg-type]
