"""The gateway's TCP relay against kernel peers on the loopback (in-process network)."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from multisock.net.network import Network
from tests.gateway.kernel_peers import (
    kernel_echo_many,
    kernel_server,
    unused_port,
)

BLOB = hashlib.sha256(b"seed").digest() * (4 * 1024 * 1024 // 32)  # 4 MiB


@pytest.fixture
def lan() -> Iterator[tuple[Network, object, object]]:
    """An app host on a gateway's LAN (lossy link), with its loopback relayed too."""
    net = Network(seed=3)
    gateway = net.add_gateway()
    app = net.add_host("app")
    gateway.attach(app, delay=0.001, loss=0.02)
    gateway.relay_loopback(app)
    yield net, gateway, app
    net.close()


def _recv_all(sock: socket.socket) -> bytes:
    parts = []
    while chunk := sock.recv(1 << 20):
        parts.append(chunk)
    return b"".join(parts)


received: list[bytes] = []


def _send_then_count(conn: socket.socket) -> None:
    """Kernel side: send BLOB, half-close, then record the digest of what it got after."""
    conn.sendall(BLOB)
    conn.shutdown(socket.SHUT_WR)
    received.append(hashlib.sha256(_recv_all(conn)).digest())


@pytest.mark.parametrize("dst", ["10.0.2.2", "127.0.0.1"])
def test_data_both_ways_and_half_close_mirrored(lan, dst: str) -> None:
    net, gateway, app = lan
    received.clear()
    with kernel_server(_send_then_count) as port:
        s = app.socket()
        s.settimeout(30)
        s.connect((dst, port))
        # the kernel peer's shutdown(SHUT_WR) arrives as EOF after every byte...
        assert hashlib.sha256(_recv_all(s)).digest() == hashlib.sha256(BLOB).digest()
        # ...and our side can still send: its FIN reaches the kernel peer as EOF
        s.sendall(BLOB[:1_000_000])
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""
        s.close()
        for _ in range(200):
            if received:
                break
            threading.Event().wait(0.05)
    assert received == [hashlib.sha256(BLOB[:1_000_000]).digest()]
    assert net.driver.errors == []


def test_app_half_close_reaches_kernel_then_reply_flows_back(lan) -> None:
    _, _, app = lan

    def reply_after_eof(conn: socket.socket) -> None:
        data = _recv_all(conn)
        conn.sendall(b"%d" % len(data))

    with kernel_server(reply_after_eof) as port:
        s = app.socket()
        s.settimeout(30)
        s.connect(("10.0.2.2", port))
        s.sendall(b"x" * 300_000)
        s.shutdown(socket.SHUT_WR)
        assert _recv_all(s) == b"300000"
        s.close()


@pytest.mark.parametrize("dst", ["10.0.2.2", "127.0.0.1", "::1", "fd00::2"])
def test_refused_port_is_econnrefused(lan, dst: str) -> None:
    _, gateway, app = lan
    port = unused_port()
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = app.socket(family)
    s.settimeout(10)
    with pytest.raises(ConnectionRefusedError):
        s.connect((dst, port))
    s.close()
    assert gateway.kernel_fds() == 0


def test_kernel_reset_reaches_the_app_as_econnreset(lan) -> None:
    _, _, app = lan

    def reset(conn: socket.socket) -> None:
        conn.recv(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with kernel_server(reset) as port:
        s = app.socket()
        s.settimeout(10)
        s.connect(("10.0.2.2", port))
        s.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            while s.recv(100):
                pass


def test_app_reset_reaches_the_kernel_peer_as_econnreset(lan) -> None:
    _, gateway, app = lan
    seen: list[str] = []
    ready = threading.Event()

    def wait_for_reset(conn: socket.socket) -> None:
        conn.recv(10)
        ready.set()
        try:
            conn.settimeout(10)
            conn.recv(10)
            seen.append("eof")
        except ConnectionResetError:
            seen.append("reset")

    with kernel_server(wait_for_reset) as port:
        s = app.socket()
        s.settimeout(10)
        s.connect(("10.0.2.2", port))
        s.sendall(b"hi")
        assert ready.wait(10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        for _ in range(200):
            if seen:
                break
            threading.Event().wait(0.05)
    assert seen == ["reset"]
    assert gateway.kernel_fds() == 0


def test_virtual_listener_takes_precedence_over_the_kernel(lan) -> None:
    _, _, app = lan

    def kernel_says(conn: socket.socket) -> None:
        conn.sendall(b"kernel")

    with kernel_server(kernel_says) as port:
        virtual = app.socket()
        virtual.bind(("127.0.0.1", port))
        virtual.listen()
        c = app.socket()
        c.settimeout(10)
        c.connect(("127.0.0.1", port))
        conn, _ = virtual.accept()
        conn.sendall(b"virtual")
        assert c.recv(10) == b"virtual"
        for sock in (c, conn, virtual):
            sock.close()
        c = app.socket()  # with the virtual listener gone, the kernel's answers
        c.settimeout(10)
        c.connect(("127.0.0.1", port))
        assert c.recv(10) == b"kernel"
        c.close()


def test_virtual_only_destination_behind_the_gateway_is_host_unreachable(lan) -> None:
    # 10.0.2.77 is inside the gateway's virtual subnet: never asked of the kernel; routed
    # to the gateway, the SYN is answered with ICMP host unreachable, as a router would
    _, gateway, app = lan
    app.add_route("10.0.2.77/32", via="10.0.2.2")
    s = app.socket()
    s.settimeout(10)
    with pytest.raises(OSError) as info:
        s.connect(("10.0.2.77", 80))
    assert info.value.errno == errno.EHOSTUNREACH
    assert gateway.tcp.counters["connects"] == 0


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_500_concurrent_flows_leave_no_kernel_fds(lan) -> None:
    net, gateway, app = lan
    app.socket().close()  # the driver's own fds (epoll, wake-up pipe) exist from here on
    before = _open_fds()
    with kernel_echo_many() as port:
        socks = []
        for i in range(500):
            s = app.socket()
            s.settimeout(30)
            s.connect(("10.0.2.2", port))
            s.sendall(b"%d" % i)
            socks.append(s)
        assert gateway.kernel_fds() == 500
        for i, s in enumerate(socks):
            want = b"%d" % i
            got = b""
            while len(got) < len(want):
                got += s.recv(10)
            assert got == want
        for s in socks:
            s.close()
        for _ in range(400):
            if gateway.kernel_fds() == 0:
                break
            threading.Event().wait(0.05)
        assert gateway.kernel_fds() == 0
    assert _open_fds() <= before  # the echo server's fds closed with it
    assert gateway.tcp.counters["flows"] == 500


def test_slow_reader_keeps_the_relay_bounded(lan) -> None:
    """A kernel peer sends far more than every buffer together to an app that reads in
    sips: what the gateway read from the kernel and the app has not consumed yet stays
    within the virtual send buffer + the app's receive buffer + one relay chunk."""
    from multisock.gateway.tcp import CHUNK

    _, gateway, app = lan
    total = 48 * 1024 * 1024
    block = b"z" * (1 << 20)

    def flood(conn: socket.socket) -> None:
        for _ in range(total // len(block)):
            conn.sendall(block)

    with kernel_server(flood) as port:
        s = app.socket()
        s.settimeout(30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 512 * 1024)
        rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        s.connect(("10.0.2.2", port))
        consumed = worst = pauses = 0
        flow = None
        while consumed < total:
            data = s.recv(64 * 1024)
            assert data
            consumed += len(data)
            if flow is None and gateway.tcp.flows:
                flow = next(iter(gateway.tcp.flows))
            if flow is not None and consumed // (2 << 20) > pauses:
                pauses += 1
                threading.Event().wait(0.05)  # the slow part: let the kernel side pile up
                worst = max(worst, flow.to_virtual - consumed)
        s.close()
    assert consumed == total and flow is not None and pauses > 10
    assert flow.to_virtual == total
    assert worst <= flow.v.sndbuf + rcvbuf + CHUNK
    assert worst > 0
