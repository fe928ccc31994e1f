"""``tidings run``: load a bus from ``MODULE:attribute`` and run its subscribers.

MODULE is a dotted module or a file path (see `tidings._cli.target`). One process runs the
consumers until SIGTERM or SIGINT, then stops taking deliveries, lets the handlers in flight
finish (up to ``--drain-timeout``) and exits 0, or 1 when the drain timed out. A second
signal cancels the handlers still running (their deliveries return to their group) and
exits 1. See `tidings._cli.worker`.

With ``--processes N`` the command becomes a supervisor of N child processes, each running
the same command with ``--processes 1`` (the supervisor imports the module too, to report a
bad target or group once, before starting anything); see `tidings._cli.supervisor`.

With ``--metrics-port P`` the workers record Prometheus metrics and ``/metrics`` on P serves
those of every process of the command together; see `tidings._cli.metrics`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from .. import Bus, ConfigError
from .._core.url import resolve_url
from ..transports import mask_url
from .errors import one_line_errors, run_async
from .metrics import MetricsSettings, shared_metrics
from .options import CliSettings
from .supervisor import supervise
from .target import load_bus
from .worker import SUPERVISOR_ENV, recording_metrics, serve

__all__ = ["run"]

# How the supervisor hands the URL to its children: in the environment, not on the command
# line, where any user of the host could read a password with `ps`.
_URL_ENV = "TIDINGS_RUN_URL"

TargetArgument = Annotated[
    str,
    typer.Argument(
        metavar="MODULE:BUS",
        help="Where the bus is: a dotted module or a file path, e.g. app.workers:bus or "
        "path/to/app.py:bus (the attribute defaults to bus).",
    ),
]
GroupOption = Annotated[
    list[str] | None,
    typer.Option(
        "--group", "-g", metavar="GROUP", help="Run only this group (repeatable). Default: all."
    ),
]
ProcessesOption = Annotated[
    int, typer.Option("--processes", "-p", min=1, help="Worker processes to run.")
]
RunUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        envvar=_URL_ENV,
        show_envvar=False,
        help="Broker URL, overriding the one the bus was created with.",
        show_default=False,
    ),
]
DrainTimeoutOption = Annotated[
    float,
    typer.Option(
        "--drain-timeout",
        min=0.0,
        help="Seconds to let in-flight handlers finish on SIGTERM/SIGINT; the exit status "
        "is 1 when some were still running then.",
    ),
]


MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        metavar="PORT",
        min=0,
        max=65535,
        help="Serve Prometheus metrics of all the worker processes on http://HOST:PORT/metrics "
        "(0: any free port, logged). Needs the observability extra.",
        show_default=False,
    ),
]
MetricsHostOption = Annotated[
    str, typer.Option("--metrics-host", metavar="HOST", help="Address to serve metrics on.")
]
MetricsIntervalOption = Annotated[
    float,
    typer.Option(
        "--metrics-interval",
        min=0.1,
        help="Seconds between two readings of the broker's statistics into the gauges.",
    ),
]


def _metrics_settings(port: int | None, host: str, interval: float) -> MetricsSettings | None:
    """The metrics asked for on the command line; a clear error when they cannot be had."""
    if port is None:
        return None
    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError(
            "--metrics-port needs prometheus-client: pip install 'tidings[observability]'"
        )
    return MetricsSettings(port, host, interval)


def _check_runnable(bus: Bus, groups: Sequence[str]) -> list[str]:
    """The groups to run; a clear error when there is nothing to run."""
    if not bus.consume:
        raise ConfigError(f"bus {bus.name!r} was created with consume=False: nothing to run")
    if not bus.groups:
        raise ConfigError(
            f"bus {bus.name!r} has no subscribers: nothing to run "
            "(register handlers with @bus.subscribe(...))"
        )
    unknown = sorted(set(groups) - set(bus.groups))
    if unknown:
        raise ConfigError(
            f"no group named {', '.join(map(repr, unknown))} on bus {bus.name!r}; "
            f"it has {', '.join(map(repr, sorted(bus.groups)))}"
        )
    return list(dict.fromkeys(groups)) or sorted(bus.groups)


def _worker_command(
    settings: CliSettings, target: str, groups: list[str], drain_timeout: float, url: str | None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one worker process of a supervisor."""
    argv = [sys.executable, "-m", "tidings", "--log-level", settings.log_level]
    argv += ["--log-format", settings.log_format, "run", target, "--processes", "1"]
    argv += ["--drain-timeout", repr(drain_timeout)]
    for name in groups:
        argv += ["--group", name]
    env = dict(os.environ)
    env[SUPERVISOR_ENV] = str(os.getpid())
    if url:
        env[_URL_ENV] = url
    return argv, env


def run(
    ctx: typer.Context,
    target: TargetArgument,
    group: GroupOption = None,
    processes: ProcessesOption = 1,
    url: RunUrlOption = None,
    drain_timeout: DrainTimeoutOption = 30.0,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "0.0.0.0",
    metrics_interval: MetricsIntervalOption = 5.0,
) -> None:
    """Run the subscribers of a bus until SIGTERM or Ctrl-C.

    Imports MODULE (a dotted module, with the current directory on sys.path, like uvicorn;
    or a file path, from its own directory) and runs every group of the bus, or only the
    --group ones. On SIGTERM/SIGINT it stops taking new deliveries, lets the handlers in
    flight finish, and exits 0 (1 when the drain timed out); a second signal stops it at
    once. With --metrics-port, /metrics serves the Prometheus metrics of every worker.
    """
    settings = ctx.obj if isinstance(ctx.obj, CliSettings) else CliSettings("INFO")
    with one_line_errors([url]):
        metrics = _metrics_settings(metrics_port, metrics_host, metrics_interval)
        bus = load_bus(target)
        if url:
            bus.url = resolve_url(url)
        groups = _check_runnable(bus, group or [])
    if processes == 1:
        metrics = metrics or recording_metrics()
        code = run_async(serve(bus, groups, drain_timeout, metrics), urls=[url, bus.url])
        raise typer.Exit(code or 0)
    argv, env = _worker_command(settings, target, group or [], drain_timeout, url)
    description = f"bus {bus.name!r} on {mask_url(bus.url)}, groups {', '.join(groups)}"
    with one_line_errors([url]), contextlib.ExitStack() as stack:
        on_exit = None
        if metrics is not None:  # served here, recorded by the workers
            shared = stack.enter_context(shared_metrics(metrics))
            env.update(shared.env)
            on_exit = shared.worker_exited
        code = run_async(
            supervise(argv, env, processes, description, on_exit=on_exit), urls=[url, bus.url]
        )
    raise typer.Exit(code or 0)
