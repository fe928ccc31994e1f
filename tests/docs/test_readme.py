"""Every Python block in the README runs, and prints what it says it does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_short_example_on_its_first_screen() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:45])
    assert "```python" in first_screen
    assert "pip install -e . && tidings demo shop" in first_screen
    assert "bash scripts/test.sh" in first_screen


def test_readme_example_runs(tmp_path: Path) -> None:
    [example] = python_blocks()
    script = tmp_path / "example.py"
    script.write_text(example)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "reserving stock for o-1 (attempt 1)" in result.stdout
    assert (tmp_path / "shop.db").exists()
