"""``tidings run``: load a bus from ``module:attribute`` and run its subscribers.

One process runs the consumers until SIGTERM or SIGINT, then stops taking deliveries, lets
the handlers in flight finish (up to ``--drain-timeout``) and exits 0. A second signal
cancels the handlers still running (their deliveries return to their group) and exits 1.

With ``--processes N`` the command becomes a supervisor of N child processes, each running
the same command with ``--processes 1`` (the supervisor imports the module too, to report a
bad target or group once, before starting anything). It forwards SIGTERM and SIGINT to them
and exits 0 when all of them exited 0. A child that fails makes the supervisor stop the
others and exit 1, so the service manager (systemd, Kubernetes) sees the failure and
restarts the service.
The children live in their own process group, so a Ctrl-C in the terminal reaches them once,
through the supervisor; they stop on their own if the supervisor disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

from .._core.bus import Bus
from .._core.url import resolve_url
from .._exceptions import ConfigError
from ..transports._urls import mask_url
from .console import CliSettings, one_line_errors, run_async

__all__ = ["load_bus", "run"]

logger = logging.getLogger("tidings.cli")

# How the supervisor hands the URL to its children: in the environment, not on the command
# line, where any user of the host could read a password with `ps`.
_URL_ENV = "TIDINGS_RUN_URL"
_SUPERVISOR_ENV = "TIDINGS_SUPERVISOR_PID"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def load_bus(target: str) -> Bus:
    """Import ``module:attribute`` (the attribute defaults to ``bus``) with the current
    directory on `sys.path`, and return the `Bus` it names."""
    module_name, _, attr = target.partition(":")
    module_name, attr = module_name.strip(), attr.strip() or "bus"
    if module_name.endswith(".py"):  # a file name given for the module: be forgiving
        module_name = module_name[:-3].replace(os.sep, ".").replace("/", ".")
    if not module_name:
        raise ConfigError(f"bad target {target!r}: use module:attribute, e.g. app.workers:bus")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(
                f"cannot import module {module_name!r}: no such module in {cwd} or on sys.path"
            ) from None
        raise ConfigError(f"cannot import module {module_name!r}: {exc}") from None
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, Bus):
        raise ConfigError(f"{module_name}:{attr} is a {type(obj).__name__}, not a tidings.Bus")
    return obj


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


def _on_signals(handler: Callable[[int], None]) -> Callable[[], None]:
    """Call `handler(signum)` in the loop on SIGTERM and SIGINT; return the undo."""
    loop = asyncio.get_running_loop()
    try:
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, handler, int(sig))
    except NotImplementedError:  # pragma: no cover - Windows event loops
        previous = {
            sig: signal.signal(sig, lambda s, _f: loop.call_soon_threadsafe(handler, s))
            for sig in _STOP_SIGNALS
        }

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def remove() -> None:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    return remove


async def _watch_supervisor(pid: int, stop: asyncio.Event) -> None:
    """Stop when the supervisor that started this worker is gone (its children re-parent)."""
    while not stop.is_set():
        if os.getppid() != pid:
            logger.warning("supervisor process %d is gone: stopping", pid)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def serve(bus: Bus, groups: list[str], drain_timeout: float) -> int:
    """Run `bus`'s consumers of `groups` until a stop signal; return the exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        name = signal.Signals(signum).name
        if len(signals) == 1:
            logger.info(
                "%s received: stopping; finishing in-flight handlers (up to %gs)",
                name,
                drain_timeout,
            )
            stop.set()
        elif main is not None:
            logger.warning("%s received again: cancelling the handlers still running", name)
            main.cancel()

    undo = _on_signals(on_signal)
    supervisor = os.environ.pop(_SUPERVISOR_ENV, "")  # not for processes we start
    watcher = (
        asyncio.create_task(_watch_supervisor(int(supervisor), stop))
        if supervisor.isdigit()
        else None
    )
    try:
        await bus.start(groups=groups)
        logger.info(
            "worker started: bus %r on %s, groups %s (pid %d)",
            bus.name,
            mask_url(bus.url),
            ", ".join(groups),
            os.getpid(),
        )
        await stop.wait()
        draining = loop.time()
        await bus.close(drain_timeout)
        if loop.time() - draining >= drain_timeout > 0:
            logger.warning(
                "handlers still running after the drain timeout of %gs were cancelled; "
                "their deliveries return to their group",
                drain_timeout,
            )
        logger.info("worker stopped (pid %d)", os.getpid())
        return 0
    except asyncio.CancelledError:
        if len(signals) < 2:
            raise
        logger.error(
            "worker stopped by force (pid %d): cancelled handlers' deliveries return to "
            "their group when their lease ends",
            os.getpid(),
        )
        return 1
    finally:
        if watcher is not None:
            watcher.cancel()
        undo()


async def supervise(argv: list[str], env: dict[str, str], processes: int, description: str) -> int:
    """Run `processes` children with `argv`, forwarding stop signals; return the status."""
    children = [
        await asyncio.create_subprocess_exec(*argv, env=env, process_group=0)
        for _ in range(processes)
    ]
    stopping = False

    def stop_all(signum: int) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

    def on_signal(signum: int) -> None:
        logger.info(
            "%s received: stopping %d worker process(es)", signal.Signals(signum).name, processes
        )
        stop_all(signum)

    undo = _on_signals(on_signal)
    logger.info(
        "started %d worker processes (pids %s): %s",
        processes,
        ", ".join(str(c.pid) for c in children),
        description,
    )
    try:
        waits = {asyncio.ensure_future(c.wait()): c for c in children}
        pending = set(waits)
        failed = False
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                child, code = waits[task], task.result()
                if code != 0:
                    failed = True
                if not stopping:
                    logger.error(
                        "worker process %d exited with status %d: stopping the others",
                        child.pid,
                        code,
                    )
                    stop_all(int(signal.SIGTERM))
        logger.info("all %d worker processes stopped", processes)
        return 1 if failed else 0
    finally:
        undo()
        for child in children:
            if child.returncode is None:  # we are being cancelled: leave no orphans
                with contextlib.suppress(ProcessLookupError):
                    child.kill()


def run(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:BUS",
            help="Where the bus is, e.g. app.workers:bus (the attribute defaults to bus).",
        ),
    ],
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Run only this group (repeatable). Default: all."),
    ] = None,
    processes: Annotated[
        int, typer.Option("--processes", "-p", min=1, help="Worker processes to run.")
    ] = 1,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar=_URL_ENV,
            show_envvar=False,
            help="Broker URL, overriding the one the bus was created with.",
            show_default=False,
        ),
    ] = None,
    drain_timeout: Annotated[
        float,
        typer.Option(
            "--drain-timeout",
            min=0.0,
            help="Seconds to let in-flight handlers finish on SIGTERM/SIGINT.",
        ),
    ] = 30.0,
) -> None:
    """Run the subscribers of a bus until SIGTERM or Ctrl-C.

    Imports MODULE with the current directory on sys.path (like uvicorn) and runs every
    group of the bus, or only the --group ones. On SIGTERM/SIGINT it stops taking new
    deliveries, lets the handlers in flight finish, and exits 0.
    """
    settings = ctx.obj if isinstance(ctx.obj, CliSettings) else CliSettings("INFO")
    with one_line_errors([url]):
        bus = load_bus(target)
        if url:
            bus.url = resolve_url(url)
        groups = _check_runnable(bus, group or [])
    if processes == 1:
        code = run_async(serve(bus, groups, drain_timeout), urls=[url, bus.url])
        raise typer.Exit(code or 0)
    argv = [sys.executable, "-m", "tidings", "--log-level", settings.log_level]
    argv += ["--log-format", settings.log_format, "run", target, "--processes", "1"]
    argv += ["--drain-timeout", repr(drain_timeout)]
    for name in group or []:
        argv += ["--group", name]
    env = dict(os.environ)
    env[_SUPERVISOR_ENV] = str(os.getpid())
    if url:
        env[_URL_ENV] = url
    description = f"bus {bus.name!r} on {mask_url(bus.url)}, groups {', '.join(groups)}"
    code = run_async(supervise(argv, env, processes, description), urls=[url, bus.url])
    raise typer.Exit(code or 0)
