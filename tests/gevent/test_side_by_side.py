"""gevent programs' expectations of a socket, on gevent's kernel sockets and under multisock:
the same scenario (``scripts/side_by_side.py``) in two interpreters, outcomes compared.

These are the cases gevent's own test suite found (``python -m compat_tests --suite gevent``):
each failed under multisock before its fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gevent", reason="gevent is not installed")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "scripts" / "side_by_side.py"

CASES = [
    "raw_sock_recv_never_waits",
    "select_closed_while_selecting",
    "select_with_tuple_answers",
    "poll_reports_socket_closed_while_polling",
    "send_timeout_keyword",
    "second_reader_is_refused",
    "default_selector_is_gevents",
    "gevent_selector_readiness",
    "ref_keeps_hub_alive",
    "ref_set_before_any_wait",
    "second_acceptor_is_refused",
    "second_datagram_reader_is_refused",
    "second_sender_is_refused",
    "cancel_wait_on_read_event",
]


def run(mode: str, case: str) -> Any:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for key in [k for k in env if k == "MULTISOCK" or k.startswith("MULTISOCK_")]:
        del env[key]
    proc = subprocess.run([sys.executable, str(SCRIPT), mode, case], capture_output=True,
                          text=True, timeout=60, env=env, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.parametrize("case", CASES)
def test_same_outcome_as_gevent_on_the_kernel(case: str) -> None:
    expected = run("kernel", case)
    assert expected[0] == "ok", expected  # the scenario itself ran through
    assert run("multisock", case) == expected
