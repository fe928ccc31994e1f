"""The tidings benchmark harness: ``python -m benchmarks`` (see ``__main__``).

Scenarios (one module each): `_embedded` (the embedded broker against raw SQLite,
`_sqlite_raw`, and huey, `_huey`), `_rabbitmq` (tidings against raw aio-pika and FastStream,
and amqplib on Node.js, `_amqplib` and ``node/``), `_scaling` (worker processes and
payload sizes) and `_memory` (one worker's resident memory). Workers are ``tidings run
benchmarks.sink:bus``. The scripts ``embedded_bus.py``, ``embedded_throughput.py`` and
``rabbitmq_throughput.py`` still run by path and print their own tables.
"""
