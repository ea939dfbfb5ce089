"""``python -m multisock demo``: its --help describes it, and it writes no file unless asked
(issue 15: it wrote /tmp/multisock-demo.pcap on every run, and --help said nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "multisock", "demo", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)


def test_demo_help_describes_the_demo_and_its_options(tmp_path: Path) -> None:
    result = demo(tmp_path, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for words in ("alpha (10.0.0.1) and beta (10.0.0.2)", "http.server", "requests",
                  "Nothing is written to disk unless --pcap is given",
                  "--seed N the network's seed", "--loss P packet loss on the link",
                  "--delay TIME one-way delay of the link; a unit is required",
                  "--pcap FILE write every packet of the demo to FILE"):
        assert words in text, words


def test_demo_writes_a_pcap_only_when_asked(tmp_path: Path) -> None:
    result = demo(tmp_path, "--loss", "0%")
    assert result.returncode == 0, result.stderr
    assert "200 OK" in result.stdout and "intact" in result.stdout
    assert list(tmp_path.iterdir()) == []  # neither in the working directory nor in TMPDIR
    assert "pcap" not in result.stdout
    pcap = tmp_path / "demo.pcap"
    asked = demo(tmp_path, "--loss", "0%", "--pcap", str(pcap))
    assert asked.returncode == 0, asked.stderr
    assert pcap.stat().st_size > 24 and f"pcap written to {pcap}" in asked.stdout


def test_demo_refuses_a_delay_without_unit(tmp_path: Path) -> None:
    result = demo(tmp_path, "--delay", "20")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        "multisock demo: error: argument --delay: a time needs a unit: '20'")
