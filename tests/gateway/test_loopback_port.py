"""A flow relayed to the program's own loopback holds the destination port on the virtual
host while it lasts (the relay's end stands for the kernel server's accepted socket). A
program that connected to 127.0.0.1:X and later binds X itself gets what it gets on the
kernel when the server that owned X stopped listening but the connection is still open:
EADDRINUSE without SO_REUSEADDR, a working listener with it (the server's connection
inherited SO_REUSEADDR, as servers set it)."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable

from multisock.net.network import Network
from tests.gateway.kernel_peers import KernelSocket


def _attempts(make: Callable[[], socket.socket], port: int) -> list[str]:
    """bind+listen on 127.0.0.1:port without, then with SO_REUSEADDR."""
    out = []
    for reuse in (0, 1):
        s = make()
        if reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            out.append("ok")
        except OSError as exc:
            out.append(errno.errorcode[exc.errno] if exc.errno else str(exc))
        finally:
            s.close()
    return out


def _server_then_stop_listening() -> tuple[socket.socket, int, threading.Thread, list]:
    """A kernel server (SO_REUSEADDR, like socketserver) that accepts one connection and
    then closes its listener, keeping the connection open."""
    srv = KernelSocket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    held: list[socket.socket] = []

    def serve() -> None:
        conn, _ = srv.accept()
        srv.close()
        conn.sendall(b"k")
        held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv, port, thread, held


def test_kernel_reference() -> None:
    srv, port, thread, held = _server_then_stop_listening()
    c = KernelSocket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(("127.0.0.1", port))
    assert c.recv(1) == b"k"
    thread.join(10)
    try:
        assert _attempts(lambda: KernelSocket(socket.AF_INET, socket.SOCK_STREAM),
                         port) == ["EADDRINUSE", "ok"]
    finally:
        c.close()
        for conn in held:
            conn.close()


def test_program_binds_a_port_it_reached_through_the_gateway() -> None:
    net = Network(seed=1)
    try:
        gateway = net.add_gateway()
        app = net.add_host("app")
        gateway.attach(app)
        gateway.relay_loopback(app)
        srv, port, thread, held = _server_then_stop_listening()
        c = app.socket()
        c.settimeout(10)
        c.connect(("127.0.0.1", port))
        assert c.recv(1) == b"k"
        thread.join(10)
        assert _attempts(app.socket, port) == ["EADDRINUSE", "ok"]  # was: both EADDRINUSE
        # and the program's own listener then takes new connections to that port
        s = app.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        d = app.socket()
        d.settimeout(10)
        d.connect(("127.0.0.1", port))
        conn, _ = s.accept()
        conn.sendall(b"v")
        assert d.recv(1) == b"v"
        for sock in (c, d, conn, s):
            sock.close()
        for kconn in held:
            kconn.close()
    finally:
        net.close()
