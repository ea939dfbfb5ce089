"""Unmodified https clients and servers (requests, urllib3, urllib, http.server) on the stack.

The server is the usual ``ThreadingHTTPServer`` whose listening socket went through
``SSLContext.wrap_socket(..., server_side=True)``; it binds the virtual host's
127.0.0.1, so the kernel's loopback has nothing on that port.
"""

from __future__ import annotations

import hashlib
import http.server
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

import multisock
from multisock.tls import SSLSocket
from tests.patched_host import kernel_refused
from tests.tls.conftest import Pki

BIG = hashlib.sha256(b"seed").digest() * (16 * 1024 * 1024 // 32)  # 16 MiB


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/big":
            body = BIG
        elif self.path == "/whoami":
            cert = self.connection.getpeercert()
            subject = dict(x[0] for x in cert["subject"]) if cert else {}
            body = f"{subject.get('commonName', '-')} {self.connection.version()}".encode()
        else:
            body = f"you asked for {self.path} over {type(self.connection).__name__}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        data = self.rfile.read(int(self.headers["Content-Length"]))
        body = hashlib.sha256(data).hexdigest().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def https_server(ctx: ssl.SSLContext) -> tuple[http.server.ThreadingHTTPServer, int,
                                                Callable[[], None]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(10)

    return server, server.server_address[1], stop


@pytest.fixture
def https(stack: multisock.Host, pki: Pki) -> Iterator[tuple[int, multisock.Host]]:
    server, port, stop = https_server(pki.server_ctx())
    assert isinstance(server.socket, SSLSocket)
    try:
        yield port, stack
    finally:
        stop()


def test_requests_over_https_with_verification(https: tuple[int, multisock.Host],
                                               pki: Pki) -> None:
    port, host = https
    verify = str(pki.ca_file)  # per request: REQUESTS_CA_BUNDLE would beat session.verify
    with requests.Session() as session:
        r = session.get(f"https://localhost:{port}/a", timeout=20, verify=verify)
        assert r.status_code == 200
        assert r.text == "you asked for /a over SSLSocket"
        payload = b"p" * 300_000
        r = session.post(f"https://localhost:{port}/b", data=payload, timeout=20, verify=verify)
        assert r.text == hashlib.sha256(payload).hexdigest()
        pools = session.adapters["https://"].poolmanager.pools
        keys = list(pools.keys())
        assert len(keys) == 1 and pools[keys[0]].num_connections == 1  # keep-alive over TLS
    assert host.ip.tcp.counters["segments_in"] > 10
    assert kernel_refused(port)  # the kernel cannot reach this server


def test_large_download_sha256(https: tuple[int, multisock.Host], pki: Pki) -> None:
    port, _ = https
    digest = hashlib.sha256()
    size = 0
    with requests.get(f"https://localhost:{port}/big", stream=True, timeout=60,
                      verify=str(pki.ca_file)) as r:
        for chunk in r.iter_content(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    assert size == len(BIG)
    assert digest.hexdigest() == hashlib.sha256(BIG).hexdigest()


def test_hostname_mismatch_rejected(https: tuple[int, multisock.Host], pki: Pki) -> None:
    port, _ = https
    with pytest.raises(requests.exceptions.SSLError) as caught:
        # the certificate names localhost only
        requests.get(f"https://127.0.0.1:{port}/", timeout=20, verify=str(pki.ca_file))
    assert "match" in str(caught.value) or "mismatch" in str(caught.value)
    import socket

    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    with pytest.raises(ssl.SSLCertVerificationError) as verr:
        pki.client_ctx().wrap_socket(sock, server_hostname="elsewhere.example")
    assert verr.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH


def test_unknown_ca_rejected(https: tuple[int, multisock.Host], pki: Pki,
                             tmp_path: Any) -> None:
    port, _ = https
    other = tmp_path / "other.pem"
    pki.other_ca.cert_pem.write_to_path(str(other))
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://localhost:{port}/", timeout=20, verify=str(other))
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen(f"https://localhost:{port}/", timeout=20,
                               context=pki.client_ctx(trust="other"))
    assert isinstance(caught.value.reason, ssl.SSLCertVerificationError)
    assert caught.value.reason.verify_code == 20  # unable to get local issuer certificate


def test_urllib_https(https: tuple[int, multisock.Host], pki: Pki) -> None:
    port, _ = https
    with urllib.request.urlopen(f"https://localhost:{port}/u", timeout=20,
                                context=pki.client_ctx()) as r:
        assert r.read() == b"you asked for /u over SSLSocket"


def test_urllib3_detects_dropped_tls_connection(https: tuple[int, multisock.Host],
                                                pki: Pki) -> None:
    import urllib3

    port, host = https
    pool = urllib3.PoolManager(ca_certs=str(pki.ca_file), retries=False)
    try:
        assert pool.request("GET", f"https://localhost:{port}/x").data == \
            b"you asked for /x over SSLSocket"
        conns = [c for c in host.ip.tcp.conns.values() if c.local[1] == port]
        assert conns
        # the server drops every idle keep-alive connection (FIN, no close_notify):
        # urllib3 must see it before reuse and reconnect (retries=False: no second chance)
        for conn in conns:
            conn.close(host.driver.now())
        # (wait for the FIN to cross the 1 ms link, so that the check below is not a race)
        deadline = time.monotonic() + 20
        while not all(c.fin_received for c in host.ip.tcp.conns.values()
                      if c.remote and c.remote[1] == port):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert pool.request("GET", f"https://localhost:{port}/y").data == \
            b"you asked for /y over SSLSocket"
    finally:
        pool.clear()


def test_client_certificate_auth(stack: multisock.Host, pki: Pki) -> None:
    _, port, stop = https_server(pki.server_ctx(client_cert=True, versions=(
        ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)))
    try:
        ctx = pki.client_ctx(client_cert=True)
        with urllib.request.urlopen(f"https://localhost:{port}/whoami", timeout=20,
                                    context=ctx) as r:
            assert r.read() == b"test client TLSv1.2"
        with pytest.raises(urllib.error.URLError) as caught:
            urllib.request.urlopen(f"https://localhost:{port}/whoami", timeout=20,
                                   context=pki.client_ctx())
        assert isinstance(caught.value.reason, ssl.SSLError)
    finally:
        stop()
