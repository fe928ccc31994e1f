"""The metrics of ``tidings run --metrics-port P``: one ``/metrics`` endpoint for all of its
processes.

One worker process serves its own registry. With ``--processes N`` the supervisor serves
them, in prometheus-client's multiprocess mode: before it starts the workers it makes a
private directory, which they get as ``PROMETHEUS_MULTIPROC_DIR`` (so their metrics are
written to memory-mapped files there), it reads every file at each scrape, marks a worker
dead when it exits (its gauges leave with it, its counts stay) and removes the directory
when it stops. The gauges read from the broker's statistics are the same in every worker
and are counted once: the most recent value of a live worker.

prometheus-client is imported only here and in `tidings.observability`, and only when
``--metrics-port`` is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import Bus, ConfigError

if TYPE_CHECKING:
    from ..observability import Prometheus

__all__ = [
    "MULTIPROC_ENV",
    "RECORD_ENV",
    "MetricsSettings",
    "SharedMetrics",
    "instrument",
    "metrics_endpoint",
    "shared_metrics",
]

# The name every process of ``tidings run`` logs under (part of its output).
logger = logging.getLogger("tidings.cli")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
RECORD_ENV = "TIDINGS_RUN_METRICS_INTERVAL"
"""Set by a supervisor for its workers: record metrics (into `MULTIPROC_ENV`) and read the
broker's statistics every so many seconds, without serving them."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """What a worker does for metrics.

    Attributes:
        port: the port to serve ``/metrics`` on (0: any free port), or None when the
            supervisor serves them.
        host: the address to listen on.
        interval: seconds between two readings of the broker's statistics.
    """

    port: int | None
    host: str
    interval: float


def instrument(bus: Bus) -> Prometheus:
    """Add a `Prometheus` middleware to `bus` (not yet started), outermost, so it counts
    the outcome that is settled and every message the bus publishes; or return the one the
    application gave it already, on the global registry (two would count everything twice).
    """
    from prometheus_client import REGISTRY

    from ..observability import Prometheus

    for mw in bus.middleware:
        if isinstance(mw, Prometheus) and mw.metrics.registry is REGISTRY:
            return mw
    prometheus = Prometheus(clock=bus.clock)
    bus.add_middleware(prometheus, outermost=True)
    return prometheus


class _Endpoint:
    """An HTTP server of ``/metrics`` in a thread of this process."""

    def __init__(self, host: str, port: int, registry: Any) -> None:
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(port, host, registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; choose "
                "another --metrics-port"
            ) from exc
        self.port: int = self._server.server_port
        shown = f"[{host}]" if ":" in host else host
        logger.info("serving metrics on http://%s:%d/metrics", shown, self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


@contextlib.contextmanager
def metrics_endpoint(settings: MetricsSettings) -> Iterator[None]:
    """Serve this process's metrics while inside (a worker on its own)."""
    if settings.port is None:
        yield
        return
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry: Any = REGISTRY
    path = os.environ.get(MULTIPROC_ENV)
    if path:  # the environment asked for multiprocess mode: read its directory
        registry = CollectorRegistry()
        registry.register(_Declared(MultiProcessCollector(None, path=path)))  # type: ignore[no-untyped-call]
    endpoint = _Endpoint(settings.host, settings.port, registry)
    try:
        yield
    finally:
        endpoint.close()


class _Declared:
    """The metrics of the workers' files, and every tidings metric that none of them has
    recorded yet (its HELP and TYPE, no samples), as one process would show them."""

    def __init__(self, collector: Any) -> None:
        from prometheus_client import CollectorRegistry

        from ..observability import Prometheus

        self._collector = collector
        declared = CollectorRegistry()
        Prometheus(registry=declared)
        self._declared = list(declared.collect())

    def collect(self) -> Iterable[Any]:
        found = {family.name: family for family in self._collector.collect()}
        for family in self._declared:
            yield found.pop(family.name, family)
        yield from found.values()


@dataclass(frozen=True, slots=True)
class SharedMetrics:
    """The metrics directory of a supervisor and its workers.

    Attributes:
        env: what to add to the workers' environment.
        port: the port ``/metrics`` is served on.
        worker_exited: to call with the pid of each worker that exited.
    """

    env: dict[str, str]
    port: int
    worker_exited: Callable[[int], None]


def _forget(mark_process_dead: Callable[[int, str], None], pid: int, path: str) -> None:
    """Drop the live gauges of a worker that exited; a failure only leaves them stale."""
    try:
        mark_process_dead(pid, path)
    except OSError as exc:
        logger.warning("could not remove the metrics of worker %d from %s: %s", pid, path, exc)


@contextlib.contextmanager
def shared_metrics(settings: MetricsSettings) -> Iterator[SharedMetrics]:
    """Serve the metrics of the workers a supervisor starts while inside."""
    assert settings.port is not None
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    path = tempfile.mkdtemp(prefix="tidings-metrics-")
    try:
        registry = CollectorRegistry()
        registry.register(_Declared(MultiProcessCollector(None, path=path)))  # type: ignore[no-untyped-call]
        endpoint = _Endpoint(settings.host, settings.port, registry)
        try:
            yield SharedMetrics(
                env={MULTIPROC_ENV: path, RECORD_ENV: repr(settings.interval)},
                port=endpoint.port,
                worker_exited=lambda pid: _forget(mark_process_dead, pid, path),
            )
        finally:
            endpoint.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
