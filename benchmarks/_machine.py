"""A description of the machine a run measured: CPU, memory, OS, disk and the versions of
everything on the path of a message."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from ._lab import RabbitMQ


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _os() -> str:
    name = platform.system()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip('"')
    return f"{name}, kernel {platform.release()}"


def _filesystem(path: Path) -> str:
    """Device, file system type and mount options of the mount holding `path`."""
    path = path.resolve()
    best: tuple[str, str, str, str] | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind, options, *_ = line.split()
            inside = path == Path(mount) or Path(mount) in path.parents
            if inside and (best is None or len(mount) > len(best[1])):
                best = (device, mount, kind, options)
    if best is None:
        return "unknown"
    device, mount, kind, options = best
    rotational = _rotational(device)
    kept = ",".join(o for o in options.split(",") if o in ("rw", "ro", "noatime", "relatime"))
    return f"{kind} on {device} ({rotational}), mounted at {mount} ({kept})"


def _rotational(device: str) -> str:
    name = Path(device).name.rstrip("0123456789")
    with contextlib.suppress(OSError):
        flag = Path(f"/sys/block/{name}/queue/rotational").read_text().strip()
        return "the kernel reports it rotational" if flag == "1" else "non-rotational"
    return "unknown kind of disk"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _tidings() -> str:
    """Version of the tidings measured and, from a git checkout, its commit."""
    import tidings

    where = Path(tidings.__file__).resolve().parent
    described = _version("tidings")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return described
    return f"{described}, commit {commit}" + (" with uncommitted changes" if changed else "")


async def _rabbitmq_version(url: str) -> str:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        transport = connection.transport
        assert transport is not None
        properties = transport.connection.server_properties
        version = properties.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()


def describe(scratch: Path, rabbitmq: RabbitMQ | None) -> dict[str, str]:
    """Label -> value, in the order the report shows them."""
    rabbitmq_version = "not used in this run"
    if rabbitmq is not None:
        rabbitmq_version = asyncio.run(_rabbitmq_version(rabbitmq.url))
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "OS": _os(),
        "disk (embedded broker files)": _filesystem(scratch),
        "Python": sys.version.split()[0],
        "SQLite": sqlite3.sqlite_version,
        "RabbitMQ": rabbitmq_version,
        "tidings": _tidings(),
        "aio-pika": _version("aio-pika"),
        "aiormq": _version("aiormq"),
        "FastStream": _version("faststream"),
        "pydantic": _version("pydantic"),
    }
