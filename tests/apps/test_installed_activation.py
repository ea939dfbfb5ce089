"""Zero-code activation from an installed multisock, not a checkout (issue 15 item 18).

A wheel used to carry no ``shims/``, so after ``pip install .`` the variable
``MULTISOCK=1`` did nothing, silently. The package now installs
``multisock-activate.pth`` into site-packages (``setup.py``). Installed both ways (``pip
install .`` and ``pip install -e .``) into a fresh venv that sees neither this checkout nor
the test venv's packages (only dnspython, the one dependency, through a path file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (ROOT / "multisock").is_dir(), reason=(
    "the source checkout's multisock/ is not here: the compiled build's run (.ci/suite-outside-checkout) runs the suite from a copy without it, so as not to "
    "import the pure source; the pure run checks the same files"))
OFFLINE_SIGNS = ("Could not find a version that satisfies", "No matching distribution found")
PROBE = ("import socket, sys\n"
         "print(socket.socket.__module__, 'multisock' in sys.modules)\n"
         "if 'multisock' in sys.modules:\n"
         "    from multisock.net.backends import live_drivers\n"
         "    import multisock\n"
         "    print(len(live_drivers()), multisock.__file__)\n")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MULTISOCK") and k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, **extra}


def _copy_source(dest: Path) -> Path:
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "multisock", src / "multisock",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


def _fresh_venv(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True,
                   timeout=120)
    python = dest / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    import dns

    deps = dest / "deps"
    deps.mkdir()
    (deps / "dns").symlink_to(Path(dns.__file__).parent)
    # "_" sorts before "m": dnspython is importable when multisock-activate.pth runs
    Path(purelib, "_multisock_test_deps.pth").write_text(f"{deps}\n")
    return python


@pytest.mark.parametrize("editable", [False, True], ids=["wheel", "editable"])
def test_installed_package_activates_with_multisock_1(tmp_path: Path, editable: bool) -> None:
    src = _copy_source(tmp_path)
    python = _fresh_venv(tmp_path / "venv")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         *(["-e"] if editable else []), str(src)],
        capture_output=True, text=True, timeout=600, env=_clean_env(), cwd=tmp_path)
    if install.returncode != 0 and any(sign in install.stderr for sign in OFFLINE_SIGNS):
        pytest.skip("building needs setuptools>=68 and wheel from the package index, which "
                    f"cannot be reached here: {install.stderr.strip().splitlines()[-1]}")
    assert install.returncode == 0, install.stderr

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True,
                              timeout=120, env=_clean_env(**env), cwd=tmp_path)

    off = run()
    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["socket", "False"]  # unset: not even imported
    on = run(MULTISOCK="1", MULTISOCK_DELAY="1ms")
    assert on.returncode == 0, on.stderr
    fields = on.stdout.split()
    assert fields[:3] == ["multisock.socket", "True", "1"], on.stdout + on.stderr
    location = fields[3]
    # the installed copy (the editable one points at its source), never this checkout
    assert Path(location).is_relative_to(src if editable else tmp_path / "venv")
    # the checkout's shims as well: still one activation, not two
    both = run(MULTISOCK="1", PYTHONPATH=str(ROOT / "shims"))
    assert both.returncode == 0, both.stderr
    assert both.stdout.split()[:3] == ["multisock.socket", "True", "1"]
    bad = run(MULTISOCK="1", MULTISOCK_LOSS="abc")
    assert bad.returncode == 2 and bad.stdout == ""
    assert "MULTISOCK_LOSS='abc'" in bad.stderr and "Error processing line" not in bad.stderr
