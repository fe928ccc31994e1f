"""Runnable example applications, written the way we want users to write theirs.

Each scenario is a package of small services; every service is a module with its own
group and an ``attach(bus, settings)`` function that subscribes its handlers, and the
package's ``create_bus(url, settings)`` builds a bus with all of them (or some of them).
The same code runs on ``memory://``, ``sqlite:///file.db`` and RabbitMQ.

* `tidings.examples.shop` — order -> stock -> payment -> shipping -> notification,
  orchestrated by a checkout saga that compensates declined cards and payment timeouts.
* `tidings.examples.streaming` — video events fanned out to recommendation, notification
  and a flaky analytics service.
* `tidings.examples.signup` — a sign-up API that answers at once while the e-mail and
  points services catch up, even when one of them is down.

Failures are decided per event by `tidings.examples.plan`, from a hash of the seed and the
event's identity, so concurrency and the number of worker processes cannot change them.
``tidings demo [shop|streaming|signup]`` runs a scenario end to end.
"""

from __future__ import annotations

__all__: list[str] = []
