"""TLS reads that wait or fail leave no reference cycle: a connection the program dropped
is closed when its last reference goes, not at the next garbage collection.

Found through gevent's https check (tests/gevent/scripts/apis.py): most of the 20
``requests.get()`` connections stayed ESTABLISHED after the calls returned. Every read that
found nothing yet raised a BlockingIOError that the facade's frame kept naming (and the TLS
channel kept its SSLWantReadError the same way); the cycle pinned the whole calling stack,
urllib3's connection pool included, and urllib3 closes a pool's connections when the pool is
freed. Each test runs with the collector off, on multisock and on the kernel (the reference).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from multisock.tls.channel import Deadline, TlsChannel
from tests.cycles import caller_frame_outlives_call, collector_off
from tests.patched_host import patched_default_host
from tests.tls.conftest import Pki, serve


@pytest.fixture(params=["multisock", "kernel"])
def where(request: pytest.FixtureRequest) -> Iterator[str]:
    """The collector off; ``socket``/``ssl`` on a patched virtual host, or the kernel's."""
    with collector_off():
        if request.param == "kernel":
            yield "kernel"
            return
        with patched_default_host(seed=43, name="tlscycles", loopback_delay="1ms"):
            yield "multisock"


def test_requests_get_closes_its_connection_without_a_collection(where: str, pki: Pki) -> None:
    def handler(tls: Any) -> bytes:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = tls.recv(4096)
            assert chunk, request
            request += chunk
        time.sleep(0.05)  # the client's first reads find nothing: the would-block path
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        tls.settimeout(10)
        return bytes(tls.recv(100))  # b"": the client closed (a timeout: it was kept open)

    port, join = serve(pki, handler)
    response = requests.get(f"https://localhost:{port}/", verify=str(pki.ca_file), timeout=20)
    assert response.text == "ok"
    del response
    assert join() == b""


def test_nonblocking_read_wanting_input_leaves_no_cycle(where: str, pki: Pki) -> None:
    done = threading.Event()
    port, join = serve(pki, lambda tls: done.wait(20))
    client = pki.client_ctx().wrap_socket(socket.create_connection(("127.0.0.1", port), 20),
                                          server_hostname="localhost")
    try:
        client.setblocking(False)
        assert not caller_frame_outlives_call(lambda: client.recv(10), ssl.SSLWantReadError)
    finally:
        done.set()
        client.close()
        join()


def test_an_error_after_waiting_for_input_leaves_no_cycle(pki: Pki) -> None:
    """The channel's own loop: the operation wants input, input comes, then it fails (as a
    read meeting the peer's EOF does). The SSLWantReadError it kept must not outlive it."""
    import multisock

    net = multisock.Network(seed=44)
    host = net.add_host("tlschannel")
    listener = host.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    a = host.socket()
    a.connect(listener.getsockname())
    b, _ = listener.accept()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = pki.client_ctx().wrap_bio(incoming, outgoing, server_hostname="localhost")
    channel = TlsChannel(b, sslobj, incoming, outgoing)
    outcomes = iter([ssl.SSLWantReadError, ssl.SSLEOFError])

    def op() -> None:
        raise next(outcomes)()

    a.sendall(b"x")  # the input the first outcome waits for
    try:
        with collector_off():
            assert not caller_frame_outlives_call(
                lambda: channel.run(op, "read", Deadline(20), flush=False), ssl.SSLEOFError)
    finally:
        for s in (a, b, listener):
            s.close()
        net.close()
