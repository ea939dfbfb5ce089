"""Unmodified stdlib and third-party networking code over the stack.

Each server binds a port on the virtual host's 127.0.0.1; a kernel socket trying
the same port is refused, and the stack's TCP counters show the segments: the
kernel never carried these bytes.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import socketserver
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

import multisock
from tests.patched_host import kernel_refused, patched_default_host

MIB = 1 << 20
BIG = bytes(range(256)) * (50 * 4096)  # 50 MiB


@pytest.fixture
def stack() -> Iterator[multisock.Host]:
    with patched_default_host(seed=21, name="apphost", loopback_delay="1ms") as host:
        yield host


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/big":
            body = BIG
        elif self.path == "/slow":
            threading.Event().wait(2)
            body = b"late"
        else:
            body = f"you asked for {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        if self.headers.get("Transfer-Encoding") == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    break
                data += chunk
        else:
            data = self.rfile.read(int(self.headers["Content-Length"]))
        body = hashlib.sha256(data).hexdigest().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(server: Any) -> Callable[[], None]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


def test_http_client_get_post_chunked_keepalive(stack: multisock.Host) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    stop = serve(server)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/one")
        assert conn.getresponse().read() == b"you asked for /one"
        first_sock = conn.sock
        conn.request("POST", "/p", body=b"payload" * 1000)
        assert conn.getresponse().read() == hashlib.sha256(b"payload" * 1000).hexdigest().encode()
        conn.request("POST", "/c", body=iter([b"abc", b"def"]), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        assert conn.getresponse().read() == hashlib.sha256(b"abcdef").hexdigest().encode()
        assert conn.sock is first_sock  # keep-alive reused the connection
        conn.close()
        assert kernel_refused(port, timeout=1)
        assert stack.ip.tcp.counters["segments_in"] > 10
    finally:
        stop()


def test_urllib_and_requests(stack: multisock.Host) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    stop = serve(server)
    try:
        with urllib.request.urlopen(f"http://localhost:{port}/u", timeout=10) as r:
            assert r.read() == b"you asked for /u"
        with requests.Session() as session:
            assert session.get(f"http://127.0.0.1:{port}/a", timeout=10).text == "you asked for /a"
            assert session.post(f"http://127.0.0.1:{port}/b", data=b"x" * 100000,
                                timeout=10).text == hashlib.sha256(b"x" * 100000).hexdigest()
            digest = hashlib.sha256()
            with session.get(f"http://127.0.0.1:{port}/big", stream=True, timeout=30) as r:
                for chunk in r.iter_content(1 << 20):
                    digest.update(chunk)
            assert digest.hexdigest() == hashlib.sha256(BIG).hexdigest()
            with pytest.raises(requests.exceptions.ReadTimeout):
                session.get(f"http://127.0.0.1:{port}/slow", timeout=0.3)
        # nothing listens on this port of the virtual host: refused fast, mapped by requests
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port + 1}/", timeout=5)
        assert kernel_refused(port, timeout=1)
    finally:
        stop()


def test_requests_connect_timeout(stack: multisock.Host) -> None:
    listener = multisock.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    stack.impair_loopback(loss=1.0)  # every SYN vanishes
    try:
        with pytest.raises(requests.exceptions.ConnectTimeout):
            requests.get(f"http://127.0.0.1:{port}/", timeout=0.3)
    finally:
        stack.impair_loopback(loss=0.0)
        listener.close()


def test_urllib3_pool_detects_dropped_connection(stack: multisock.Host) -> None:
    import urllib3

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    stop = serve(server)
    try:
        pool = urllib3.PoolManager()
        assert pool.request("GET", f"http://127.0.0.1:{port}/x").data == b"you asked for /x"
        # the server drops every idle keep-alive connection: urllib3 must notice and reconnect
        for conn in list(stack.ip.tcp.conns.values()):
            if conn.local[1] == port:
                conn.close(stack.driver.now())
        assert pool.request("GET", f"http://127.0.0.1:{port}/y").data == b"you asked for /y"
        pool.clear()
    finally:
        stop()


def test_socketserver_udp_wsgiref_xmlrpc(stack: multisock.Host) -> None:
    import socket
    import xmlrpc.client
    from wsgiref.simple_server import WSGIRequestHandler, make_server
    from xmlrpc.server import SimpleXMLRPCServer

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            sock.sendto(data.upper(), self.client_address)

    udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Echo)
    stop_udp = serve(udp)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    def app(environ: dict[str, Any], start: Any) -> list[bytes]:
        start("200 OK", [("Content-Type", "text/plain")])
        return [b"wsgi says hi"]

    wsgi = make_server("127.0.0.1", 0, app, handler_class=Quiet)
    stop_wsgi = serve(wsgi)
    rpc = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
    rpc.register_function(lambda a, b: a + b, "add")
    stop_rpc = serve(rpc)
    try:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(5)
        client.sendto(b"shout", udp.server_address)
        assert client.recv(100) == b"SHOUT"
        client.close()
        url = f"http://127.0.0.1:{wsgi.server_address[1]}/"
        assert urllib.request.urlopen(url, timeout=10).read() == b"wsgi says hi"
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{rpc.server_address[1]}/")
        assert proxy.add(2, 40) == 42
        assert kernel_refused(rpc.server_address[1], timeout=1)
    finally:
        stop_udp()
        stop_wsgi()
        stop_rpc()
