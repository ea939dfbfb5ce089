"""Bridged fd mode, side by side with the kernel: C-level I/O on ``fileno()``.

With the readiness eventfd, ``os.read(fd, 0)``, ``os.write``, ``os.sendfile`` and a socket
handed to a subprocess as stdin/stdout fail or read counters. In bridged mode a connected TCP
socket's fd is a kernel socketpair end the stack relays, so the same code gives the kernel's
answers: per socket (``SOL_MULTISOCK``/``SO_FD_MODE``, inherited by accepted sockets) and
globally (``run --fd-mode bridged`` / ``MULTISOCK_FD_MODE=bridged``).
"""

from __future__ import annotations

import os
import socket as kernel
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import multisock
from multisock.api.stream import FD_BRIDGED, SO_FD_MODE, SOL_MULTISOCK
from tests.api.sidebyside import both

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def host() -> Iterator[Any]:
    net = multisock.Network(seed=23)
    yield net.add_host("bridged", "10.23.3.1/24")
    net.close()


def _bridged(mod: Any, sock: Any) -> None:
    if mod is not kernel:
        sock.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)


def _pair(mod: Any, early_fd: bool = False) -> tuple[Any, Any, Any]:
    """(listener, client, server): the listener bridged (its accepted socket inherits it),
    the client bridged before it connects (``early_fd``: its fd asked for before, too)."""
    listener = mod.socket()
    _bridged(mod, listener)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = mod.socket()
    _bridged(mod, client)
    if early_fd:
        client.fileno()
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def _read_all(sock: Any) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def c_level_io(early_fd: bool) -> Any:
    def scenario(mod: Any) -> Any:
        listener, client, server = _pair(mod, early_fd)
        with listener, client, server:
            out: list[Any] = []
            fd = server.fileno()
            out.append(os.read(fd, 0))
            client.sendall(b"hello")
            out.append(os.read(fd, 100))
            os.write(fd, b"from C")
            out.append(client.recv(100))
            os.write(client.fileno(), b"client C")  # the client's fd, bridged too
            out.append(server.recv(100))
            # Python and C on one stream, in order
            client.sendall(b"abcdef")
            out.append(server.recv(3) + os.read(fd, 3))
            with tempfile.TemporaryFile() as f:
                f.write(b"F" * 300_000)
                f.flush()
                sent = 0
                while sent < 300_000:
                    sent += os.sendfile(fd, f.fileno(), sent, 300_000 - sent)
            got = b""
            while len(got) < 300_000:
                got += client.recv(65536)
            out.append(got == b"F" * 300_000)
            server.shutdown(mod.SHUT_WR)
            out.append(client.recv(10))  # EOF through the bridge
            return out

    return scenario


@pytest.mark.parametrize("early_fd", [False, True])
def test_c_level_io_like_kernel(early_fd: bool, host: Any) -> None:
    expected, got = both(c_level_io(early_fd), host)
    assert expected == ("ok", [b"", b"hello", b"from C", b"client C", b"abcdef", True, b""])
    assert got == expected


def subprocess_stdio(mod: Any) -> Any:
    """inetd style: the accepted socket is a child's stdin and stdout; the parent closes its
    copy at once and the connection lives on in the child, then ends with its exit."""
    listener, client, server = _pair(mod)
    with listener, client:
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys\nfor line in sys.stdin.buffer:\n"
             "    sys.stdout.buffer.write(line.upper()); sys.stdout.flush()"],
            stdin=server, stdout=server)
        server.close()
        client.settimeout(30)
        client.sendall(b"one\ntwo\n")
        client.shutdown(mod.SHUT_WR)
        reply = _read_all(client)
        return child.wait(30), reply


def test_subprocess_stdio_like_kernel(host: Any) -> None:
    expected, got = both(subprocess_stdio, host)
    assert expected == ("ok", (0, b"ONE\nTWO\n"))
    assert got == expected


def backpressure(mod: Any) -> Any:
    """A program that does not read its bridged socket stops the sender (the window closes:
    the relay takes from TCP only what the pair accepts); then every byte arrives in order."""
    listener, client, server = _pair(mod)
    with listener, client, server:
        client.setblocking(False)
        pattern = bytes(range(256)) * 256
        sent = 0
        try:
            while sent < 512 * 1024 * 1024:
                sent += client.send(pattern)
        except BlockingIOError:
            pass
        client.setblocking(True)
        client.shutdown(mod.SHUT_WR)
        fd = server.fileno()
        got = bytearray()
        while chunk := os.read(fd, 65536):
            got += chunk
        whole = (pattern * (sent // len(pattern) + 1))[:sent]
        return sent < 512 * 1024 * 1024, bytes(got) == whole


def test_backpressure_like_kernel(host: Any) -> None:
    expected, got = both(backpressure, host)
    assert expected == ("ok", (True, True))
    assert got == expected


def test_listener_keeps_readiness_fd(host: Any) -> None:
    """A listener's fd stays the readiness eventfd (readable with a pending connection)."""
    import select

    def scenario(mod: Any) -> Any:
        listener = mod.socket()
        _bridged(mod, listener)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with listener, mod.create_connection(listener.getsockname()):
            ready = select.select([listener.fileno()], [], [], 10)[0]
            conn, _ = listener.accept()
            conn.close()
            return len(ready)

    expected, got = both(scenario, host)
    assert got == expected == ("ok", 1)


_SCRIPT = textwrap.dedent("""
    import os, socket, subprocess, sys
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    client.sendall(b"ping")
    print(socket.socket.__module__, os.read(server.fileno(), 0), os.read(server.fileno(), 4))
""")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_global_fd_mode(how: str, tmp_path: Path) -> None:
    script = tmp_path / "bridged_app.py"
    script.write_text(_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
    env["PYTHONPATH"] = str(ROOT)
    if how == "flag":
        cmd = [sys.executable, "-m", "multisock", "run", "--isolated", "--fd-mode", "bridged",
               str(script)]
    else:
        env.update(MULTISOCK="1", MULTISOCK_ISOLATED="1", MULTISOCK_FD_MODE="bridged")
        cmd = [sys.executable, str(script)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["multisock.socket", "b''", "b'ping'"]


def test_fd_mode_value_checked() -> None:
    from multisock.options import OptionError, from_env

    assert from_env({"MULTISOCK_FD_MODE": "bridged"})["fd_mode"] == "bridged"
    with pytest.raises(OptionError):
        from_env({"MULTISOCK_FD_MODE": "bridge"})
    with pytest.raises(OptionError):  # not cooperative yet: refused rather than stalling
        from_env({"MULTISOCK_FD_MODE": "bridged", "MULTISOCK_GEVENT": "1"})
