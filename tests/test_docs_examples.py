"""The Python examples of README.md and docs/getting_started.md run as written.

Each page's ```python blocks are run in order in one fresh interpreter, as a reader who
pastes them one after another would run them. They take about 20 s (README) and 45 s
(getting started) of CPU time on one core, hence the ``slow`` marker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/getting_started.md"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_page_has_python_examples(page):
    assert python_blocks(ROOT / page), f"{page} has no ```python block"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, tmp_path):
    code = "\n\n".join(python_blocks(ROOT / page))
    if "skmissvae.plotting" in code:
        pytest.importorskip("matplotlib")
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "ConvergenceWarning" not in result.stderr, result.stderr[-4000:]  # budgets suffice
