"""The code stays ruff- and mypy-clean: checked in the suite so CI enforces it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (ROOT / "multisock").is_dir(), reason=(
    "the source checkout's multisock/ is not here: the compiled build's run (.ci/suite-outside-checkout) runs the suite from a copy without it, so as not to "
    "import the pure source; the pure run checks the same files"))


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed (extra 'test' installs it)")
def test_ruff_clean() -> None:
    paths = [p for p in ("multisock", "tests", "bench", "examples", "compat_tests", "shims")
             if (ROOT / p).is_dir()]
    result = subprocess.run(["ruff", "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (extra 'test' installs it)")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "multisock"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
