"""Each test starts with no upcaster registered, and leaves none behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tidings.schemas import registry


@pytest.fixture(autouse=True)
def no_upcasters() -> Iterator[None]:
    registry.clear()
    yield
    registry.clear()
