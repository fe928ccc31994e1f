"""Retry policy: how many attempts, how long between them, which errors to retry."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .._exceptions import ConfigError, Permanent

__all__ = ["Retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """How a group retries a failed delivery.

    A handler that raises has failed one attempt. If the exception is retryable and
    attempts remain, the broker schedules the delivery again after a back-off delay (no
    worker sleeps on it, and the count survives restarts); otherwise the event goes to the
    group's dead-letter queue.

    ```python
    @bus.subscribe("payment.charge", group="payment",
                   retry=Retry(attempts=3, base=1.0, never=(CardDeclined,)))
    async def charge(command: ChargeCard) -> None: ...
    ```

    With the defaults, the delays before attempts 2 to 5 are drawn from up to 0.5, 1, 2 and
    4 seconds.

    Args:
        attempts: total runs of the handler, the first delivery included; after the last
            failed attempt the event is dead-lettered. ``attempts=1`` never retries.
        base: seconds; the delay before attempt ``n+1`` is drawn uniformly from
            ``[0, min(max_delay, base * 2**(n-1))]`` (exponential back-off, full jitter).
        max_delay: cap of the back-off in seconds.
        on: exception classes that are retried; others dead-letter at once.
        never: exception classes that dead-letter at once even if they are in `on`.
            `Permanent` always dead-letters at once.
    """

    attempts: int = 5
    base: float = 0.5
    max_delay: float = 60.0
    on: tuple[type[BaseException], ...] = field(default=(Exception,))
    never: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"Retry(attempts={self.attempts!r}): attempts must be at least 1")
        if self.base < 0 or self.max_delay < 0:
            raise ConfigError("Retry: base and max_delay must not be negative")
        for name in ("on", "never"):
            value = getattr(self, name)
            if isinstance(value, type):
                object.__setattr__(self, name, (value,))

    def retryable(self, exc: BaseException) -> bool:
        """True when `exc` may be retried: an instance of `on`, and neither `Permanent` nor
        an instance of `never` (attempts left are not considered)."""
        if isinstance(exc, (Permanent, *self.never)):
            return False
        return isinstance(exc, self.on)

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the delay after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay, self.base * 2 ** min(attempt - 1, 62)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A full-jitter delay, in seconds, before the attempt after failed attempt number
        `attempt`: uniform between 0 and `ceiling` of it.

        Args:
            attempt: the number of the attempt that failed (1 for the first delivery).
            rng: the random generator to draw from (the `random` module by default).
        """
        return (rng or random).uniform(0.0, self.ceiling(attempt))
