"""``python -m multisock run --virtual-time [--until T] app.py`` (issue 19)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from multisock.options import OptionError, from_env

TICKER = """
import asyncio, time
async def tick():
    n = 0
    while True:
        await asyncio.sleep(1)
        n += 1
        if n % 20 == 0:
            print("tick", n, time.monotonic(), flush=True)
asyncio.run(tick())
"""

BLOCKED = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5))
s.settimeout(100)
try:
    s.recv(1)
except TimeoutError:
    print("timed out at", time.monotonic(), flush=True)
s.settimeout(None)
s.recv(1)
"""


def _run(tmp_path: Path, source: str, *flags: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "multisock", "run", *flags, str(script)],
                          capture_output=True, text=True, timeout=120)


def test_until_stops_an_endless_asyncio_program_at_its_virtual_time(tmp_path: Path) -> None:
    done = _run(tmp_path, TICKER, "--virtual-time", "--until", "60s")
    assert done.stdout.split("\n")[:3] == ["tick 20 20.0", "tick 40 40.0", "tick 60 60.0"]
    assert done.returncode == 124
    assert "stopped at virtual time 60 s" in done.stderr


def test_a_blocking_program_runs_on_virtual_time_and_a_hang_is_reported(tmp_path: Path) -> None:
    done = _run(tmp_path, BLOCKED, "--virtual-time")
    assert done.stdout == "timed out at 100.0\n"
    assert done.returncode == 1
    assert "waits for ever at virtual time 100 s" in done.stderr


def test_options_that_do_not_go_together() -> None:
    with pytest.raises(OptionError, match="--virtual-time"):
        from_env({"MULTISOCK_VIRTUAL_TIME": "1"})
    with pytest.raises(OptionError, match="MULTISOCK_VIRTUAL_TIME"):
        from_env({"MULTISOCK_UNTIL": "5s"})
    from multisock.cli import build_parser
    from multisock.options import check_combination

    args = build_parser().parse_args(["--until", "5s", "x.py"])
    with pytest.raises(OptionError, match="--until: goes with --virtual-time"):
        check_combination(vars(args), env=False)
