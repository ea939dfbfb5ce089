"""Bridged sockets under multisock's select/poll/epoll and its TLS layer.

A bridged socket's fd is a kernel socket whose readiness the relay changes *after* the
stack's change callbacks have run, so waiting on the stack (a userspace socket's way) can
miss the moment the bytes reach the fd: an event loop (trio's epoll, urllib3's hypercorn
server) then slept forever. Both waits now go to the kernel for bridged sockets.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from socket import IPPROTO_TCP, TCP_QUICKACK
from typing import Any

import pytest
import trustme

import multisock
from multisock import monkey
from multisock import select as mselect
from multisock.api.stream import FD_BRIDGED, SO_FD_MODE, SOL_MULTISOCK
from multisock.runtime import use_host
from multisock.socket import socket as msocket
from tests.patched_host import patched_default_host


@pytest.fixture
def host() -> Iterator[Any]:
    net = multisock.Network(seed=2324)
    host = net.add_host("bridged-loops", "10.23.5.1/24")
    with use_host(host):
        yield host
    net.close()


def _bridged_server_pair() -> tuple[Any, Any, Any]:
    """(listener, client, server): the accepted socket bridged, the client not."""
    listener = msocket()
    listener.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = msocket()
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    # no delayed ACK: its timer would be a later stack change that wakes a missed wait
    server.setsockopt(IPPROTO_TCP, TCP_QUICKACK, 1)
    server.fileno()  # the bridge is made here
    return listener, client, server


def _later(fn: Any) -> threading.Thread:
    """Run ``fn`` once the caller is (very likely) asleep in its wait; the wait's own
    30-second bound is what a missed wake-up runs into."""

    def run() -> None:
        time.sleep(0.2)
        fn()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("how", ["epoll", "poll", "select"])
def test_wait_wakes_for_bridged_data(how: str, host: Any) -> None:
    listener, client, server = _bridged_server_pair()
    with listener, client, server:
        got = []
        for round_ in range(5):
            sender = _later(lambda: client.sendall(b"x"))
            if how == "epoll":
                ep = mselect.epoll()
                ep.register(server.fileno(), mselect.EPOLLIN)
                got.append(len(ep.poll(30)))
                ep.close()
            elif how == "poll":
                p = mselect.poll()
                p.register(server, mselect.POLLIN)
                got.append(len(p.poll(30_000)))
            else:
                got.append(len(mselect.select([server], [], [], 30)[0]))
            sender.join()
            assert server.recv(10) == b"x", round_
        assert got == [1] * 5


def test_tls_handshake_over_bridged_socket() -> None:
    """multisock's TLS layer on a bridged socket waits on the pair, not on the control
    block the relay has emptied (before: the handshake waited forever)."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with patched_default_host(seed=2325, name="bridged-tls", patch=monkey.patch_ssl):
        listener, client, server = _bridged_server_pair()
        client.settimeout(30)
        server.settimeout(30)
        out: list[Any] = []

        def serve() -> None:
            with server_ctx.wrap_socket(server, server_side=True) as tls:
                tls.sendall(tls.recv(100).upper())

        thread = threading.Thread(target=serve)
        thread.start()
        with listener, client_ctx.wrap_socket(client, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            out.append(tls.recv(100))
        thread.join(30)
        assert out == [b"HELLO"]


def test_bridged_fd_waits_in_the_kernel(host: Any) -> None:
    """What makes the waits above exact (before: the userspace path, woken by the stack's
    changes, which come before the relay has moved the bytes): multisock's poll/epoll/select
    hand a bridged socket to the kernel, and ``wait_io`` (the TLS layer's wait) asks the
    pair, whose bytes the control block no longer holds."""
    import select as kernel_select

    listener, client, server = _bridged_server_pair()
    with listener, client, server:
        p = mselect.poll()
        p.register(server, mselect.POLLIN)
        ep = mselect.epoll()
        ep.register(server.fileno(), mselect.EPOLLIN)
        assert not p._user and not ep._user  # the kernel objects have them
        ep.close()
        client.sendall(b"ready")
        assert kernel_select.select([server.fileno()], [], [], 30)[0]
        core = server._sock
        assert core.tcb.recvq.size == 0  # the relay moved the bytes into the pair
        assert core.wait_io(True, False, 0.0)
        assert server.recv(10) == b"ready"


@pytest.mark.parametrize("how", ["epoll", "poll"])
def test_late_bridge_moves_to_the_kernel_object(how: str, host: Any) -> None:
    """An event loop's non-blocking connect registers the fd before the connection (and so
    the bridge) exists; once bridged, the same number is a kernel socket and the next wait
    hands it to the kernel object (before: it stayed on the userspace path and its wake-ups
    could be missed)."""
    listener = msocket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = msocket()
    client.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)
    client.setblocking(False)
    number = client.fileno()  # asked for before the connection: the readiness fd
    mux: Any = mselect.epoll() if how == "epoll" else mselect.poll()
    mux.register(number, mselect.POLLOUT)
    try:
        client.connect(listener.getsockname())
    except BlockingIOError:
        pass
    with listener, client:
        server, _ = listener.accept()
        with server:
            assert len(mux.poll(30_000 if how == "poll" else 30)) == 1  # connected
            assert client.fileno() == number and client._sock.bridge is not None
            mux.modify(number, mselect.POLLIN)
            assert not mux._user  # the kernel object watches the bridge now
            server.sendall(b"late")
            assert len(mux.poll(30_000 if how == "poll" else 30)) == 1
            assert client.recv(10) == b"late"
    if how == "epoll":
        mux.close()
