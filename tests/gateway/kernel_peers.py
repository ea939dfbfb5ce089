"""Kernel-side peers for the gateway tests (loopback only): servers on real sockets."""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# the kernel's class, whatever a later test patches (kept in a tuple: a module-level name
# bound to it would be reported by activation's check for stale kernel references)
_KERNEL_CLASS = (socket.socket,)


def KernelSocket(*args: int) -> socket.socket:  # noqa: N802 - reads as the class it makes
    return _KERNEL_CLASS[0](*args)


@contextmanager
def kernel_server(handler: Callable[[socket.socket], None],
                  family: int = socket.AF_INET) -> Iterator[int]:
    """A kernel TCP server on the loopback running ``handler(conn)`` per connection in a
    thread; yields its port."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    srv = KernelSocket(family, socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(128)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=_guard, args=(handler, conn), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        srv.close()


def _guard(handler: Callable[[socket.socket], None], conn: socket.socket) -> None:
    try:
        handler(conn)
    except OSError:
        pass
    finally:
        conn.close()


@contextmanager
def kernel_echo_many() -> Iterator[int]:
    """A kernel TCP echo server for many connections at once: one thread, a selector."""
    srv = KernelSocket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    srv.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for key, _ in sel.select(0.1):
                sock = key.fileobj
                if sock is srv:
                    try:
                        conn, _ = srv.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    sock.setblocking(True)
                    sock.sendall(data)
                    sock.setblocking(False)
                else:
                    sel.unregister(sock)
                    sock.close()
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)


@contextmanager
def kernel_udp_echo() -> Iterator[int]:
    sock = KernelSocket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except OSError:
                continue
            sock.sendto(data.upper(), addr)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def unused_port(type_: int = socket.SOCK_STREAM) -> int:
    """A loopback port with nothing on it right now (bound, then released)."""
    with KernelSocket(socket.AF_INET, type_) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
