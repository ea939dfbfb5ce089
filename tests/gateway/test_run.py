"""``python -m multisock run`` with the gateway on (the default): real services on the
kernel's loopback, published ports, two processes; ``--isolated`` keeps the old bubble."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.kernel_peers import unused_port

ROOT = Path(__file__).resolve().parents[2]
SIZE = 20 * 1024 * 1024


def _env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
    return {**clean, "PYTHONPATH": str(ROOT)}


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "multisock", "run", *args],
                          capture_output=True, text=True, timeout=timeout, env=_env(), cwd=ROOT)


def _wait_port(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A kernel ``python -m http.server`` serving a 20 MiB file; (port, its sha256)."""
    root = tmp_path_factory.mktemp("www")
    blob = os.urandom(SIZE)
    (root / "blob").write_bytes(blob)
    port = unused_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield port, hashlib.sha256(blob).hexdigest()
    finally:
        server.kill()
        server.wait()


FETCH = """
import hashlib, socket, sys, urllib.request
assert socket.socket.__module__ == "multisock.socket"
url = sys.argv[1]
print(hashlib.sha256(urllib.request.urlopen(url, timeout=60).read()).hexdigest())
"""


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.2.2"])
def test_kernel_http_server_fetched_under_delay_and_loss(served, tmp_path: Path,
                                                         address: str) -> None:
    port, digest = served
    script = tmp_path / "fetch.py"
    script.write_text(FETCH)
    result = run("--delay", "5ms", "--loss", "3%", "--stats", str(script),
                 f"http://{address}:{port}/blob")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [digest]
    assert "retransmits=" in result.stderr  # the flow crossed the impaired userspace stack


def test_isolated_keeps_the_program_in_its_bubble(served, tmp_path: Path) -> None:
    port, _ = served
    script = tmp_path / "fetch.py"
    script.write_text(FETCH)
    result = run("--isolated", str(script), f"http://127.0.0.1:{port}/blob")
    assert result.returncode != 0
    assert "Connection refused" in result.stderr


def test_refused_port_is_connection_refused_through_requests(tmp_path: Path) -> None:
    pytest.importorskip("requests", reason="requests not installed (pip install '.[test]')")
    port = unused_port()
    script = tmp_path / "refused.py"
    script.write_text(
        "import errno, requests, sys\n"
        "try:\n"
        f"    requests.get('http://127.0.0.1:{port}/', timeout=10)\n"
        "except requests.ConnectionError as exc:\n"
        "    cause = exc.args[0].reason if exc.args and hasattr(exc.args[0], 'reason') else exc\n"
        "    print('refused' if 'Connection refused' in str(cause) or "
        "'Errno 111' in str(cause) else repr(cause))\n")
    result = run("--loss", "3%", str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused"]


@pytest.fixture
def published(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """``run --loss 3% --publish PORT:8000 -m http.server 8000`` serving a 20 MiB file."""
    blob = os.urandom(SIZE)
    (tmp_path / "blob").write_bytes(blob)
    port = unused_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "multisock", "run", "--loss", "3%", "--delay", "1ms",
         "--publish", f"{port}:8000", "-m", "http.server", "8000", "--directory",
         str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT)
    try:
        _wait_http(port)
        yield port, hashlib.sha256(blob).hexdigest()
    finally:
        server.kill()
        server.wait()


def _wait_http(port: int, deadline: float = 30.0) -> None:
    """The published port exists from activation on, the program's server a little later:
    until it listens, a connection is accepted by the kernel and then reset (docker's too)."""
    import urllib.request

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no HTTP server behind 127.0.0.1:{port}")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reaches_a_published_port_of_a_run_program(published) -> None:
    port, digest = published
    got = subprocess.run(["curl", "-sSf", "--max-time", "60", f"http://127.0.0.1:{port}/blob"],
                         capture_output=True, timeout=90)
    assert got.returncode == 0, got.stderr
    assert hashlib.sha256(got.stdout).hexdigest() == digest


def test_two_run_processes_talk_through_their_gateways(published, tmp_path: Path) -> None:
    port, digest = published
    script = tmp_path / "fetch.py"
    script.write_text(FETCH)
    result = run("--loss", "2%", str(script), f"http://127.0.0.1:{port}/blob")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [digest]


def test_publish_setting_is_checked() -> None:
    result = run("--publish", "99999", "-c")
    assert result.returncode == 2
    assert "--publish" in result.stderr
    result = run("--isolated", "--publish", "8000", "x.py")
    assert result.returncode == 2
    assert "--isolated" in result.stderr
