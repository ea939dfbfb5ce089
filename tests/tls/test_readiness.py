"""Readiness of TLS sockets on the stack: non-blocking handshakes, bytes held by the TLS layer.

A kernel TLS socket's select() sees only the kernel's buffer: decrypted bytes
waiting inside OpenSSL are invisible, and programs must ask ``pending()``. Here the
TLS layer's bytes (decrypted, or received but not yet decrypted) make the socket
readable for select, poll, selectors, urllib3's wait_for_read and the eventfd
alike: a program that checks ``pending()`` works the same, one that forgets no
longer hangs.
"""

from __future__ import annotations

import hashlib
import select
import selectors
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from multisock import monkey
from tests.patched_host import patched_default_host
from tests.tls.conftest import Pki, serve


@pytest.fixture
def lan() -> Iterator[multisock.Host]:
    """Patched, on an unimpaired loopback: a send is delivered before it returns."""
    with patched_default_host(seed=13, name="tlsready") as host:
        yield host


def readable_everywhere(s: Any) -> tuple[bool, bool, bool, bool, bool]:
    """Is ``s`` readable now, by each mechanism a program might use?"""
    poller = select.poll()
    poller.register(s, select.POLLIN)
    with selectors.DefaultSelector() as sel:
        sel.register(s, selectors.EVENT_READ)
        by_selector = bool(sel.select(0))
    kernel_select = monkey.get_original("select", "select")
    from urllib3.util.wait import wait_for_read

    return (select.select([s], [], [], 0)[0] == [s], bool(poller.poll(0)), by_selector,
            kernel_select([s.fileno()], [], [], 0)[0] == [s.fileno()],  # the eventfd itself
            wait_for_read(s, timeout=0))


def test_nonblocking_handshake_wants_read_then_completes(lan: multisock.Host,
                                                         pki: Pki) -> None:
    client_waiting = threading.Event()
    server_done = threading.Event()

    def handler(conn: Any) -> bytes:
        assert client_waiting.wait(20)  # the client must find nothing to read at first
        tls = pki.server_ctx().wrap_socket(conn, server_side=True)
        server_done.set()  # TLS 1.3: its session tickets are now on their way to the client
        data = tls.recv(100)
        tls.sendall(data.upper())
        return bytes(data)

    port, join = serve(pki, handler, wrap=False)
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setblocking(False)
    s = pki.client_ctx().wrap_socket(sock, server_hostname="localhost",
                                     do_handshake_on_connect=False)
    wants: list[str] = []
    with s, selectors.DefaultSelector() as sel:
        sel.register(s, selectors.EVENT_READ)
        while True:
            try:
                s.do_handshake()
                break
            except ssl.SSLWantReadError:
                wants.append("read")
                client_waiting.set()
                assert sel.select(20), "readable must come once the server answers"
        assert wants and set(wants) == {"read"}
        assert s.version() == "TLSv1.3"
        # the server's session tickets follow the client's handshake; only once they are in
        # (and consumed by a recv that finds no application data) must nothing be readable
        assert server_done.wait(20)
        with pytest.raises(ssl.SSLWantReadError):
            s.recv(10)
        assert sel.select(0) == []
        s.sendall(b"quiet")
        reply = b""
        while not reply:
            assert sel.select(20)
            try:
                reply = s.recv(10)
            except ssl.SSLWantReadError:
                continue
        assert reply == b"QUIET"
    assert join() == b"quiet"


def test_decrypted_bytes_waiting_make_the_socket_readable(lan: multisock.Host,
                                                          pki: Pki) -> None:
    sent = threading.Event()

    def handler(conn: Any) -> bytes:
        conn.sendall(b"a" * 100)  # one record
        sent.set()
        return bytes(conn.recv(10))

    port, join = serve(pki, handler)
    with pki.client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                                      server_hostname="localhost") as s:
        assert sent.wait(20)
        assert s.recv(10) == b"a" * 10
        assert s.pending() == 90
        assert readable_everywhere(s) == (True,) * 5  # (the kernel's select would say no)
        assert s.recv(1000) == b"a" * 90
        assert s.pending() == 0
        assert readable_everywhere(s) == (False,) * 5
        s.sendall(b"done")
    assert join() == b"done"


def test_received_ciphertext_not_yet_decrypted_is_readable(lan: multisock.Host,
                                                           pki: Pki) -> None:
    sent = threading.Event()

    def handler(conn: Any) -> bytes:
        conn.sendall(b"1" * 100)  # two records, both here before the client reads
        conn.sendall(b"2" * 100)
        sent.set()
        return bytes(conn.recv(10))

    port, join = serve(pki, handler)
    with pki.client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                                      server_hostname="localhost") as s:
        assert sent.wait(20)
        assert s.recv(1000) == b"1" * 100  # one record per read, as OpenSSL does
        assert s.pending() == 0  # nothing decrypted is left...
        assert readable_everywhere(s) == (True,) * 5  # ... but the second record is here
        assert s.recv(1000) == b"2" * 100
        assert readable_everywhere(s) == (False,) * 5
        s.sendall(b"done")
    assert join() == b"done"


def test_one_thread_reads_while_another_writes(lan: multisock.Host, pki: Pki) -> None:
    """Full duplex on one TLS socket from two threads (each side), 8 MiB each way."""
    size = 8 << 20
    up = hashlib.sha256(b"up").digest() * (size // 32)
    down = hashlib.sha256(b"down").digest() * (size // 32)

    def reader(conn: Any, out: list[str]) -> None:
        digest, got = hashlib.sha256(), 0
        while got < size:
            chunk = conn.recv(1 << 16)
            assert chunk
            digest.update(chunk)
            got += len(chunk)
        out.append(digest.hexdigest())

    def handler(conn: Any) -> str:
        out: list[str] = []
        thread = threading.Thread(target=reader, args=(conn, out))
        thread.start()
        conn.sendall(down)
        thread.join(60)
        return out[0]

    port, join = serve(pki, handler)
    with pki.client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                                      server_hostname="localhost") as s:
        out: list[str] = []
        thread = threading.Thread(target=reader, args=(s, out))
        thread.start()
        s.sendall(up)
        thread.join(60)
        assert out == [hashlib.sha256(down).hexdigest()]
    assert join() == hashlib.sha256(up).hexdigest()
