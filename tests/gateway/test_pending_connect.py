"""A SYN waiting on a kernel connect() that never completes: the gateway forgets the
pending kernel socket when the app gives up, or after its own bound - not the kernel's
~127 s. The hanging connect is made on the loopback: a kernel listener whose accept queue
is full drops further SYNs, so a connect to it stays in SYN-SENT."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from multisock.gateway import tcp as gwtcp
from multisock.net.network import Network
from tests.gateway.kernel_peers import KernelSocket


@pytest.fixture
def stuck_port() -> Iterator[int]:
    """A kernel port whose connects hang: listen(0), accept queue filled, never accepted."""
    srv = KernelSocket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(8):
        c = KernelSocket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", port))
        fillers.append(c)
    probe = KernelSocket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        pytest.skip("this kernel completes connects to a full accept queue (syncookies?)")
    except TimeoutError:
        pass
    finally:
        probe.close()
    yield port
    for c in fillers:
        c.close()
    srv.close()


def _wait(condition, seconds: float = 20.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        threading.Event().wait(0.05)
    return condition()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_connect_forgotten_when_the_app_gives_up(stuck_port: int, monkeypatch) -> None:
    monkeypatch.setattr(gwtcp, "SILENCE_MIN", 1.5)  # past the 1 s retransmission
    net = Network(seed=1)
    try:
        gateway = net.add_gateway()
        app = net.add_host("app")
        gateway.attach(app)
        app.socket().close()  # the driver's own fds exist from here on
        before = _open_fds()
        s = app.socket()
        s.settimeout(1.5)  # the app's first SYN and one retransmission, then it gives up
        with pytest.raises(TimeoutError):
            s.connect(("10.0.2.2", stuck_port))
        s.close()
        assert _wait(lambda: gateway.kernel_fds() == 0)
        assert gateway.tcp.pending == {}
        assert gateway.tcp.counters["abandoned"] == 1
        assert _open_fds() <= before
    finally:
        net.close()


def test_connect_bounded_while_the_app_keeps_retrying(stuck_port: int, monkeypatch) -> None:
    monkeypatch.setattr(gwtcp, "CONNECT_TIMEOUT", 0.5)
    net = Network(seed=1)
    try:
        gateway = net.add_gateway()
        app = net.add_host("app")
        gateway.attach(app)
        s = app.socket()
        s.settimeout(0.1)
        with pytest.raises(TimeoutError):  # the connect goes on in the background
            s.connect(("10.0.2.2", stuck_port))
        assert gateway.kernel_fds() == 1
        # the app retransmits at 1 s and 3 s; the gateway gave up at 0.5 s, so the SYN at
        # 1 s starts a second connect, itself forgotten 0.5 s later
        assert _wait(lambda: gateway.tcp.counters["timed_out"] >= 1)
        s.close()
        assert _wait(lambda: gateway.kernel_fds() == 0)
        assert gateway.tcp.pending == {}
    finally:
        net.close()
