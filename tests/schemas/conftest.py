"""Each test starts with no upcaster registered; the ones registered before (by modules
such as the example shop) are back afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tidings.schemas import registry


@pytest.fixture(autouse=True)
def no_upcasters() -> Iterator[None]:
    before = dict(registry._steps)
    registry.clear()
    yield
    registry.clear()
    registry._steps.update(before)
