"""``run --firewall RULE`` / ``MULTISOCK_FIREWALL`` and ``--ids-rules FILE``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = """
import socket
servers = []
for port in (5432, 5433):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    servers.append(s)
for port in (5432, 5433):
    c = socket.socket()
    c.settimeout(0.5)
    try:
        c.connect(("127.0.0.1", port))
        c.sendall(b"DROP TABLE users")
        print(port, "open")
    except OSError as exc:
        print(port, type(exc).__name__)
from multisock.runtime import default_host
host = default_host()
print("events", sorted({e.kind for e in host.security.events()}))
"""


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
    shims = {"PYTHONPATH": f"{ROOT / 'shims'}:{ROOT}"} if env else {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(script)] if env else \
        [sys.executable, "-m", "multisock", "run", *args, str(script)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**clean, **shims, **(env or {})})


def test_run_firewall_flag(tmp_path: Path) -> None:
    result = _run(tmp_path, "--firewall", "input drop tcp dport 5432",
                  "--firewall", "input reject tcp dport 5433")
    assert result.returncode == 0, result.stderr
    assert "5432 TimeoutError" in result.stdout
    assert "5433 ConnectionRefusedError" in result.stdout


def test_firewall_from_the_environment(tmp_path: Path) -> None:
    result = _run(tmp_path, env={"MULTISOCK": "1", "MULTISOCK_FIREWALL":
                                 "input accept ct state established,related; "
                                 "input accept tcp dport 5433 flags syn,!ack; input policy drop"})
    assert result.returncode == 0, result.stderr
    assert "5432 TimeoutError" in result.stdout and "5433 open" in result.stdout


def test_a_bad_rule_stops_the_program(tmp_path: Path) -> None:
    result = _run(tmp_path, "--firewall", "input drop tcp dport 99999")
    assert result.returncode == 2 and "5432" not in result.stdout
    assert "port out of range" in result.stderr and "Traceback" not in result.stderr


def test_ids_rules_flag(tmp_path: Path) -> None:
    rules = tmp_path / "local.rules"
    rules.write_text('alert tcp any any -> any 5433 (msg:"sql"; content:"drop table"; nocase; '
                     'sid:100;)\n')
    result = _run(tmp_path, "--ids-rules", str(rules))
    assert result.returncode == 0, result.stderr
    assert "events ['ids_alert']" in result.stdout
    bad = tmp_path / "bad.rules"
    bad.write_text("alert tcp nonsense\n")
    result = _run(tmp_path, "--ids-rules", str(bad))
    assert result.returncode == 1 and "IDS rules" in result.stderr
