"""One RabbitMQ contender's consumer in a process of its own, for the latency runs:
``python -m benchmarks.consumer KIND URL NAME [MANAGEMENT_URL]``.

It attaches the consumer of contender `KIND` (``tidings``, ``aio-pika`` or ``faststream``,
see `_rabbitmq_clients`) to the queue of namespace `NAME`, logs ``worker started: ...
(pid N)`` as a JSON line on stderr (what `_workers.Workers` waits for, as for ``tidings
run``), and reports every message it handles to the harness (`_workers.Tally`) until it is
terminated.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from ._rabbitmq_clients import KINDS
from ._workers import Tally


def main(argv: list[str]) -> None:
    kind, url, name, *management = argv
    contender = KINDS[kind](url, name, management[0] if management else None)
    tally = Tally()

    def ready() -> None:
        message = f"worker started: {kind} consumer of {name} (pid {os.getpid()})"
        print(json.dumps({"message": message}), file=sys.stderr, flush=True)

    asyncio.run(contender.serve(tally.record, ready))


if __name__ == "__main__":
    main(sys.argv[1:])
