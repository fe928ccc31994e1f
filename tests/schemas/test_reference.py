"""Every public name of `tidings.schemas` has an entry in its API reference page."""

from __future__ import annotations

import inspect
from pathlib import Path

import tidings.schemas

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "api" / "schemas.md"


def test_every_public_name_is_in_the_api_reference() -> None:
    members = {line.strip().removeprefix("- ") for line in PAGE.read_text().splitlines()}
    missing = [name for name in tidings.schemas.__all__ if name not in members]
    assert not missing, f"not in {PAGE.name}: {missing}"


def test_every_public_name_has_a_docstring() -> None:
    for name in tidings.schemas.__all__:
        value = getattr(tidings.schemas, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert (value.__doc__ or "").strip(), name
