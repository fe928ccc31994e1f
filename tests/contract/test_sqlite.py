"""The contract suite on the embedded broker: a new SQLite file per test, real time."""

import pytest

from tidings.contract import BusContract, Harness, TransportContract


@pytest.fixture
async def harness(tmp_path):
    async with Harness(f"sqlite:///{tmp_path}/bus.db") as h:
        yield h


class TestSqliteBus(BusContract):
    pass


class TestSqliteTransport(TransportContract):
    pass
