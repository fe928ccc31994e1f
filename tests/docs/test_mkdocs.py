"""The documentation site builds with ``mkdocs build --strict`` (a broken link fails), its
API reference covers every public name, and its diagrams are rendered.

The site is built once for all the tests here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tidings
import tidings.contract
import tidings.observability
import tidings.outbox
import tidings.sagas
import tidings.schemas
import tidings.testing
import tidings.transports
import tidings.transports.memory
import tidings.transports.rabbitmq
import tidings.transports.sqlite

ROOT = Path(__file__).resolve().parents[2]

OPTIONS_AND_FACTORIES = {
    "tidings.transports.memory": ["MemoryOptions", "create_transport"],
    "tidings.transports.sqlite": ["SqliteOptions", "create_transport"],
    "tidings.transports.rabbitmq": ["RabbitMQOptions", "create_transport"],
}


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def api_reference(site: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((site / "reference" / "api").rglob("*.html")))


def public_names() -> list[str]:
    """Every public name, as the API reference's anchors spell it."""
    names = [f"tidings.{n}" for n in [*tidings.__all__, "Publication"]]
    for module in (
        tidings.testing,
        tidings.transports,
        tidings.contract,
        tidings.outbox,
        tidings.sagas,
        tidings.schemas,
        tidings.observability,
    ):
        names += [f"{module.__name__}.{n}" for n in module.__all__]
    for package, members in OPTIONS_AND_FACTORIES.items():
        names += [f"{package}.{n}" for n in members]
    return names


def test_mkdocs_build_strict(site: Path) -> None:
    assert (site / "index.html").exists()
    assert (site / "guides" / "rabbitmq" / "index.html").exists()
    assert (site / "reference" / "api" / "index.html").exists()


def test_every_public_name_has_an_entry_in_the_api_reference(site: Path) -> None:
    html = api_reference(site)
    missing = [name for name in public_names() if f'id="{name}"' not in html]
    assert not missing, f"not in the API reference: {missing}"


def test_the_api_reference_shows_the_docstrings(site: Path) -> None:
    html = api_reference(site)
    # a parameter of Bus, a method's argument, an exception's explanation
    assert "publish-only bus even when it has subscribers" in html
    assert "an event type" in html and "AMQP topic pattern" in html
    assert "start the workers before the" in html


def test_the_diagrams_are_mermaid_rendered_by_the_theme(site: Path) -> None:
    for page in ("concepts", "examples", "guides/retries"):
        html = (site / page / "index.html").read_text()
        assert '<pre class="mermaid">' in html, page
    retries = (site / "guides" / "retries" / "index.html").read_text()
    assert "stateDiagram-v2" in retries and "dlq replay" in retries
    examples = (site / "examples" / "index.html").read_text()
    assert "sequenceDiagram" in examples and "payment.declined" in examples
