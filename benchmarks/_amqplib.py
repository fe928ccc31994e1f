"""The Node.js amqplib contender of the RabbitMQ scenario: RabbitMQ's client-side ceiling.

``benchmarks/node/amqp.js`` does what the Python contenders do (`_rabbitmq_clients`): the
same topology, persistent and mandatory messages of about 1 KiB of JSON shaped like the
tidings envelope on a confirm channel with 256 publishes in flight, and a consumer with
prefetch 256 that parses each body and acknowledges it; timed the same way, from the first
publish to the last confirm and from the first message handled to the last. It runs as a
``node`` subprocess per phase, so connecting and starting Node are not timed.

amqplib is pinned in ``benchmarks/node/package.json`` and its lock file; `install` runs
``npm ci`` there when ``node_modules`` has no amqplib yet. Throughput only: the fixed-rate
latency runs have no amqplib consumer.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

from ._rabbitmq_clients import Contender

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "amqp.js"


def install() -> None:
    """``npm ci`` in ``benchmarks/node`` unless amqplib is installed there already."""
    if (NODE_DIR / "node_modules" / "amqplib" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError(
            "the amqplib contender needs Node.js 18+ and npm on PATH "
            "(or leave RabbitMQ out with --no-rabbitmq)"
        )
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm ci in {NODE_DIR} failed:\n{result.stderr[-2000:]}")


class Amqplib(Contender):
    """amqplib on Node.js, driven as a subprocess (publish and consume throughput)."""

    label = "amqplib (Node.js)"

    async def _node(self, mode: str, count: int, timeout: float) -> float:
        node = shutil.which("node") or "node"
        argv = [node, str(SCRIPT), mode, self.url, self.name, self.queue, str(count)]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(
                f"amqplib {mode} of {count} did not finish in {timeout:g}s"
            ) from None
        if process.returncode != 0:
            raise RuntimeError(f"amqplib {mode} failed:\n{err.decode()[-2000:]}")
        return float(json.loads(out.decode().strip().splitlines()[-1])["rate"])

    async def publish(self, count: int) -> float:
        return await self._node("publish", count, max(60.0, count / 100))

    async def consume(self, count: int, timeout: float) -> float:
        return await self._node("consume", count, timeout)
