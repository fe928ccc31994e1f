"""The engine of ``tidings demo``: run a scenario of `tidings.examples` end to end.

The demo declares the scenario's groups, starts worker processes (``tidings run`` of the
scenario's worker bus) on the same broker, publishes the workload from this process, and
watches two things until the scenario is finished: the outcome events, through an
observer group of its own, and the groups' statistics (nothing ready, in flight or
scheduled). On ``memory://`` the services run in this process instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidings import Bus, ConfigError, GroupStats, TidingsError
from tidings.transports import mask_url

from .plan import Settings, bus_options_to_env
from .scenario import OBSERVER_GROUP, Audit, Scenario, Tracker
from .shop import ShopScenario
from .signup import SignupScenario
from .streaming import StreamingScenario

__all__ = ["SCENARIOS", "DemoResult", "Snapshot", "percentile", "run_scenario"]

logger = logging.getLogger("tidings.demo")

SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in (ShopScenario(), StreamingScenario(), SignupScenario())
}
_POLL = 0.05


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0-100) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(slots=True)
class Snapshot:
    """Where a run is: items published and done, and each group's queue."""

    scenario: Scenario
    count: int
    published: int = 0
    done: int = 0
    queues: dict[str, GroupStats] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    workers: int = 0


@dataclass(slots=True)
class DemoResult:
    """How a run ended: the scenario's counts, latencies and the groups' final queues."""

    scenario: str
    url: str
    processes: int
    seconds: float
    counts: dict[str, int]
    dead: dict[str, int]
    latencies: list[float]
    invariants: dict[str, bool] = field(default_factory=dict)
    kills: int = 0

    @property
    def holds(self) -> bool:
        """True when every invariant the scenario checked holds."""
        return all(self.invariants.values())

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""

        def ms(q: float) -> float | None:
            value = percentile(self.latencies, q)
            return None if value is None else round(value * 1000, 1)

        return {
            "scenario": self.scenario,
            "url": mask_url(self.url),
            "processes": self.processes,
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
            "dead_letters": self.dead,
            "latency_ms": {"p50": ms(50), "p99": ms(99)},
            "invariants": self.invariants,
            "workers_killed": self.kills,
        }


class _Workers:
    """Worker processes running ``tidings run <scenario worker>`` on the shared broker."""

    def __init__(
        self,
        scenario: Scenario,
        url: str,
        settings: Settings,
        count: int,
        bus_options: Mapping[str, Any],
    ) -> None:
        self._logs = tempfile.TemporaryDirectory(prefix="tidings-demo-workers-")
        env = {
            **os.environ,
            **settings.to_env(),
            **bus_options_to_env(bus_options),
            "TIDINGS_URL": url,
            "PYTHONUNBUFFERED": "1",
        }
        self._command = [
            *(sys.executable, "-m", "tidings", "run", scenario.worker, "--drain-timeout", "5")
        ]
        self._env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self._reported: set[int] = set()
        self.kills = 0
        for n in range(count):
            self.procs.append(self._spawn(n))

    def _spawn(self, n: int) -> subprocess.Popen[bytes]:
        with Path(self._logs.name, f"worker-{n + 1}.log").open("ab") as log:
            proc = subprocess.Popen(
                self._command, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        logger.info("worker %d started (pid %d)", n + 1, proc.pid)
        return proc

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL a random running worker, and start another in its place."""
        n = rng.randrange(len(self.procs))
        proc = self.procs[n]
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            self._reported.add(proc.pid)
            self.kills += 1
            logger.warning("chaos: killed worker %d (pid %d)", n + 1, proc.pid)
        self.procs[n] = self._spawn(n)

    def alive(self) -> int:
        """How many are running; a failure is reported once, and an error when none is."""
        for n, proc in enumerate(self.procs):
            if proc.poll() is not None and proc.pid not in self._reported:
                self._reported.add(proc.pid)
                logger.warning(
                    "worker %d (pid %d) exited with status %s; the others take over its work",
                    n + 1,
                    proc.pid,
                    proc.returncode,
                )
        running = sum(1 for proc in self.procs if proc.poll() is None)
        if not running:
            tail = self._tail(0)
            raise TidingsError(f"every demo worker exited; the first one said: {tail}")
        return running

    def _tail(self, n: int) -> str:
        text = Path(self._logs.name, f"worker-{n + 1}.log").read_text(errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else "nothing"

    async def stop(self) -> None:
        """SIGTERM every worker (they drain and exit), kill those still running after 15 s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, 15.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self._logs.cleanup()


def _check_dedupe(scenario: Scenario, services: Bus, observer: Bus, dedupe: object) -> None:
    """A one-line error when the scenario's idempotent groups need an external dedupe
    store (RabbitMQ has none of its own) and none was given."""
    idempotent = sorted(name for name, group in services.groups.items() if group.idempotent)
    if not idempotent or dedupe or observer.transport.dedupe_store() is not None:
        return
    scheme = observer.transport.scheme
    raise ConfigError(
        f"the {scenario.name} demo on {scheme}:// needs a dedupe store for its idempotent "
        f"groups ({', '.join(idempotent)}): pass --dedupe redis://host:6379/0"
    )


class _Run:
    """One run of a scenario: its two buses, what it saw so far, its worker processes."""

    def __init__(
        self,
        scenario: Scenario,
        url: str,
        *,
        count: int,
        settings: Settings,
        consume: bool,
        options: Mapping[str, Any],
        report: Callable[[Snapshot], None],
    ) -> None:
        self.scenario = scenario
        self.settings = settings
        self.report = report
        self.tracker = Tracker()
        self.snapshot = Snapshot(scenario=scenario, count=count)
        self.observer = scenario.observer(url, self.tracker, **options)
        self.services = scenario.create_bus(url, settings, consume=consume, **options)
        self.workers: _Workers | None = None
        self.base: dict[str, int] = {}  # each group's dead letters before the run
        self.audit: Audit | None = None

    async def start(self, dedupe: object) -> None:
        """Start the services' bus (the observer is started first) and note the groups'
        dead letters, so the run counts only its own."""
        _check_dedupe(self.scenario, self.services, self.observer, dedupe)
        await self.services.start()
        await self.scenario.prepare(self.services)
        self.base = {s.group: s.dead for s in await self.services.stats()}

    def progress(self) -> None:
        self.snapshot.workers = self.workers.alive() if self.workers else 0
        self.report(self.snapshot)

    async def publish(self) -> None:
        """Publish the workload, reporting progress at most every 0.1 s."""
        last = 0.0
        for number in range(1, self.snapshot.count + 1):
            await self.scenario.publish(self.services, number, self.settings, self.tracker)
            self.snapshot.published = number
            if time.monotonic() - last > 0.1:
                last = time.monotonic()
                self.progress()

    async def finished(self) -> bool:
        """Refresh the snapshot; True once the scenario finished and every group is idle."""
        scenario, snapshot = self.scenario, self.snapshot
        stats = {s.group: s for s in await self.services.stats()}
        # The observer's own bus knows its group best (a broker may only list the groups a
        # connection declared, e.g. RabbitMQ without its management API).
        stats.update({s.group: s for s in await self.observer.stats() if s.group == OBSERVER_GROUP})
        snapshot.queues = {g: stats[g] for g in scenario.groups if g in stats}
        snapshot.dead = {g: s.dead - self.base.get(g, 0) for g, s in snapshot.queues.items()}
        snapshot.done = scenario.done(self.tracker)
        watched = [*scenario.groups, OBSERVER_GROUP]
        idle = all(
            g in stats
            and stats[g].ready == 0
            and stats[g].in_flight == 0
            and stats[g].scheduled == 0
            for g in watched
        )
        return idle and scenario.finished(self.tracker, snapshot.count, snapshot.dead)

    async def wait(self, timeout: float, deadline: float) -> None:
        """Wait until `finished`; a `TidingsError` after `deadline` (monotonic time)."""
        while not await self.finished():
            self.progress()
            if time.monotonic() > deadline:
                raise TidingsError(
                    f"the {self.scenario.name} demo did not finish within {timeout:g}s "
                    f"({self.snapshot.done} of {self.snapshot.count} {self.scenario.unit} done); "
                    "run it with --log-level INFO to see why"
                )
            await asyncio.sleep(_POLL)
        self.report(self.snapshot)
        self.audit = await self.scenario.audit(self.services)

    async def chaos(self, every: float, rng: random.Random) -> None:
        """Kill a random worker every `every` seconds (restarting it), until cancelled."""
        while True:
            await asyncio.sleep(every)
            if self.workers is not None:
                await asyncio.to_thread(self.workers.kill_one, rng)

    async def close(self, failed: bool) -> None:
        """Stop the workers and close both buses; on failure, do not wait for handlers
        that may never finish."""
        if self.workers is not None:
            with contextlib.suppress(Exception):
                await self.workers.stop()
        await self.services.close(drain_timeout=0.5 if failed else 10.0)
        await self.observer.close(drain_timeout=0.5 if failed else 10.0)

    def result(self, url: str, processes: int, seconds: float) -> DemoResult:
        counts = self.scenario.summary(self.tracker, self.snapshot.count, self.snapshot.dead)
        if self.audit is not None:
            counts.update(self.audit.counts)
        return DemoResult(
            scenario=self.scenario.name,
            url=url,
            processes=processes,
            seconds=seconds,
            counts=counts,
            dead=dict(self.snapshot.dead),
            latencies=list(self.tracker.latencies.values()),
            invariants=dict(self.audit.invariants) if self.audit is not None else {},
            kills=self.workers.kills if self.workers is not None else 0,
        )


async def run_scenario(
    scenario: Scenario,
    url: str,
    *,
    count: int,
    settings: Settings,
    processes: int = 0,
    timeout: float = 120.0,
    on_progress: Callable[[Snapshot], None] | None = None,
    bus_options: Mapping[str, Any] | None = None,
    chaos: float | None = None,
    seed: int | None = None,
) -> DemoResult:
    """Run `scenario` with `count` items on `url` until it finished; return the result.

    With `processes` > 0 the services run in that many worker processes (not on
    ``memory://``, which one process owns); otherwise in this process. `bus_options`
    (``name``, ``dedupe``, transport options) go to every bus of the run, the workers'
    too. With `chaos` (seconds) and worker processes, a random worker is killed with
    SIGKILL that often while the run goes on, and started again (`seed` seeds the choice).
    Raises `TidingsError` when the run does not finish within `timeout` seconds, and
    `ConfigError` when the scenario needs a dedupe store the broker lacks.
    """
    options = dict(bus_options or {})
    if url.startswith("memory:"):
        processes = 0
    started = time.monotonic()
    report = on_progress or (lambda _: None)
    run = _Run(
        scenario,
        url,
        count=count,
        settings=settings,
        consume=processes == 0,
        options=options,
        report=report,
    )
    await run.observer.start()  # the observer's group exists before any outcome is published
    failed = True
    monkey: asyncio.Task[None] | None = None
    try:
        await run.start(options.get("dedupe"))
        if processes:
            run.workers = _Workers(scenario, url, settings, processes, options)
            if chaos:
                monkey = asyncio.create_task(run.chaos(chaos, random.Random(seed)))
        await run.publish()
        await run.wait(timeout, started + timeout)
        failed = False
    finally:
        if monkey is not None:
            monkey.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monkey
        await run.close(failed)
    return run.result(url, processes, time.monotonic() - started)
