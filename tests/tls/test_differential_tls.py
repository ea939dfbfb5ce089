"""The same TLS scenarios over kernel sockets (the stdlib's ssl.SSLSocket) and multisock's.

Each scenario is a function of a socket *module* and the test PKI; it starts a
server thread when it needs one and returns what both sides saw. The outcome
(values, or exception type with its SSL reason / verify code / errno / message)
must be identical: the kernel run is on the real loopback, multisock's on a
virtual host. Only ``patch_ssl()`` is active, so ``socket`` is the kernel's module.
"""

from __future__ import annotations

import hashlib
import re
import select
import selectors
import socket as kernel
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import multisock.socket as msock
from multisock import monkey
from tests.patched_host import patched_default_host
from tests.tls.conftest import TLS12, TLS13, Pki

Scenario = Callable[[Any, Pki], Any]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def message(exc: BaseException) -> str:
    """The text without _ssl.c's source position ("_ssl.c:989: ...", "... (_ssl.c:2427)"),
    which names a line of CPython's C file, not behaviour."""
    return re.sub(r"^_ssl\.c:\d+: | \(_ssl\.c:\d+\)$", "", str(exc))


def describe(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ("SSLCertVerificationError", exc.verify_code)
    if isinstance(exc, ssl.SSLError):
        return (type(exc).__name__, exc.errno, exc.reason, message(exc))
    if isinstance(exc, OSError):
        return (type(exc).__name__, exc.errno, None if exc.errno else message(exc))
    return (type(exc).__name__, str(exc))


def outcome(fn: Scenario, mod: Any, pki: Pki) -> Any:
    try:
        return ("ok", fn(mod, pki))
    except Exception as exc:  # noqa: BLE001 - the outcome *is* the exception
        return describe(exc)


class Server:
    """One connection accepted on 127.0.0.1 by ``mod``, handled in a thread."""

    def __init__(self, mod: Any, handler: Callable[[Any], Any],
                 ctx: ssl.SSLContext | None = None) -> None:
        self.listener = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.result: Any = None
        self.ctx = ctx
        self.handler = handler
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(20)
            if self.ctx is not None:
                conn = self.ctx.wrap_socket(conn, server_side=True)
            with conn:
                self.result = ("ok", self.handler(conn))
        except Exception as exc:  # noqa: BLE001
            self.result = describe(exc)
        finally:
            self.listener.close()

    def join(self) -> Any:
        self.thread.join(30)
        assert not self.thread.is_alive(), "server thread stuck"
        return self.result


def connect(mod: Any, port: int, timeout: float = 20) -> Any:
    return mod.create_connection(("127.0.0.1", port), timeout=timeout)


def drain(conn: Any) -> bytes:
    """Read until EOF (the client closed)."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def echo_upper(conn: Any) -> bytes:
    data = conn.recv(1000)
    conn.sendall(data.upper())
    return data


# ---------------------------------------------------------------- handshakes


@scenario
def versions_pinned(mod: Any, pki: Pki) -> Any:
    seen = []
    for versions in (TLS12, TLS13):
        server = Server(mod, lambda c: (c.version(), len(c.shared_ciphers() or []) > 0),
                        pki.server_ctx())
        with pki.client_ctx(versions=versions).wrap_socket(
                connect(mod, server.port), server_hostname="localhost") as s:
            seen.append((s.version(), s.cipher()[1], s.compression(), s.pending()))
        seen.append(server.join())
    return seen


@scenario
def peer_certificates(mod: Any, pki: Pki) -> Any:
    server = Server(mod, lambda c: c.getpeercert(), pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        cert = s.getpeercert()
        der = s.getpeercert(binary_form=True)
        binding = s.get_channel_binding("tls-unique")
        client = (cert["subject"], cert["subjectAltName"], cert["notAfter"],
                  hashlib.sha256(der).hexdigest(), ssl.DER_cert_to_PEM_cert(der)[:27],
                  binding is None or len(binding))
    return client, server.join()


@scenario
def hostname_mismatch(mod: Any, pki: Pki) -> Any:
    server = Server(mod, lambda c: c.recv(10), pki.server_ctx())
    sock = connect(mod, server.port)
    try:
        pki.client_ctx().wrap_socket(sock, server_hostname="elsewhere.example")
    finally:
        sock.close()
    return server.join()


@scenario
def unknown_ca(mod: Any, pki: Pki) -> Any:
    server = Server(mod, lambda c: c.recv(10), pki.server_ctx(versions=TLS12))
    sock = connect(mod, server.port)
    try:
        pki.client_ctx(trust="other").wrap_socket(sock, server_hostname="localhost")
    except ssl.SSLCertVerificationError as exc:
        return describe(exc), exc.verify_message, server.join()
    finally:
        sock.close()
    return "accepted"


@scenario
def client_certificate_accepted(mod: Any, pki: Pki) -> Any:
    seen = []
    for versions in (TLS12, TLS13):
        server = Server(mod, lambda c: (dict(x[0] for x in c.getpeercert()["subject"]),
                                        c.recv(10)),
                        pki.server_ctx(client_cert=True, versions=versions))
        with pki.client_ctx(client_cert=True).wrap_socket(
                connect(mod, server.port), server_hostname="localhost") as s:
            s.sendall(b"hi")
        seen.append(server.join())
    return seen


@scenario
def client_certificate_missing_tls12(mod: Any, pki: Pki) -> Any:
    server = Server(mod, lambda c: c.recv(10), pki.server_ctx(client_cert=True, versions=TLS12))
    sock = connect(mod, server.port)
    try:
        pki.client_ctx().wrap_socket(sock, server_hostname="localhost")
    except ssl.SSLError as exc:
        return describe(exc), server.join()
    finally:
        sock.close()
    return "accepted"


@scenario
def client_certificate_missing_tls13(mod: Any, pki: Pki) -> Any:
    """TLS 1.3: the client's handshake ends before the server checks; its first read fails."""
    server = Server(mod, lambda c: c.recv(10), pki.server_ctx(client_cert=True, versions=TLS13))
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        try:
            s.recv(10)
        except ssl.SSLError as exc:
            return describe(exc), server.join()
    return "accepted"


@scenario
def alpn(mod: Any, pki: Pki) -> Any:
    seen = []
    for offer in (["http/1.1", "spdy/3"], ["h2", "http/1.1"], ["gopher"]):
        server = Server(mod, lambda c: c.selected_alpn_protocol(),
                        pki.server_ctx(alpn=["h2", "http/1.1"]))
        with pki.client_ctx(alpn=offer).wrap_socket(connect(mod, server.port),
                                                    server_hostname="localhost") as s:
            seen.append((s.selected_alpn_protocol(), server.join()))
    return seen


@scenario
def sni_callback_sees_the_sslsocket(mod: Any, pki: Pki) -> Any:
    ctx = pki.server_ctx()
    seen: list[Any] = []

    def callback(sslsock: Any, name: str, context: ssl.SSLContext) -> None:
        seen.append((isinstance(sslsock, ssl.SSLSocket), sslsock.server_side, name,
                     context is ctx))

    ctx.sni_callback = callback
    server = Server(mod, echo_upper, ctx)
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        assert s.server_hostname == "localhost"
        s.sendall(b"sni")
        reply = s.recv(10)
    return reply, server.join(), seen


@scenario
def session_resumption_tls12(mod: Any, pki: Pki) -> Any:
    ctx = pki.client_ctx(versions=TLS12)
    server_ctx = pki.server_ctx()
    server = Server(mod, echo_upper, server_ctx)
    with ctx.wrap_socket(connect(mod, server.port), server_hostname="localhost") as s:
        s.sendall(b"one")
        s.recv(10)
        session = s.session
        first = s.session_reused
    server.join()
    server = Server(mod, echo_upper, server_ctx)
    with ctx.wrap_socket(connect(mod, server.port), server_hostname="localhost",
                         session=session) as s:
        s.sendall(b"two")
        s.recv(10)
        second = s.session_reused
    server.join()
    return first, second, session is not None


@scenario
def handshake_on_connect_after_wrap(mod: Any, pki: Pki) -> Any:
    """wrap an unconnected socket, then connect(): the stdlib's client path."""
    server = Server(mod, echo_upper, pki.server_ctx())
    s = pki.client_ctx().wrap_socket(mod.socket(mod.AF_INET), server_hostname="localhost")
    with s:
        before = (s.version(), s.pending())
        s.settimeout(20)
        s.connect(("127.0.0.1", server.port))
        s.sendall(b"late")
        reply = s.recv(10)
        try:
            s.connect(("127.0.0.1", server.port))
        except ValueError as exc:
            again = str(exc)
    return before, reply, again, server.join()


# ---------------------------------------------------------------------- data


@scenario
def large_transfer_both_ways(mod: Any, pki: Pki) -> Any:
    payload = hashlib.sha256(b"x").digest() * (4 * 1024 * 1024 // 32)

    def handler(conn: Any) -> Any:
        got = b""
        while len(got) < len(payload):
            got += conn.recv(1 << 16)
        conn.sendall(got[::-1])
        return hashlib.sha256(got).hexdigest()

    server = Server(mod, handler, pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        s.sendall(payload)
        back = bytearray()
        buf = bytearray(100_000)
        while len(back) < len(payload):
            n = s.recv_into(buf)
            back += buf[:n]
    return server.join(), bytes(back) == payload[::-1]


@scenario
def makefile_lines(mod: Any, pki: Pki) -> Any:
    def handler(conn: Any) -> Any:
        reader = conn.makefile("rb")
        lines = [reader.readline(), reader.readline()]
        writer = conn.makefile("wb")
        writer.write(b"".join(lines).upper())
        writer.flush()
        writer.close()
        reader.close()
        return lines

    server = Server(mod, handler, pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        f = s.makefile("rwb")
        f.write(b"first line\nsecond line\n")
        f.flush()
        replies = [f.readline(), f.readline()]
        f.close()
    return replies, server.join()


@scenario
def pending_and_partial_reads(mod: Any, pki: Pki) -> Any:
    def handler(conn: Any) -> Any:
        conn.sendall(b"a" * 1000)
        return conn.recv(10)

    server = Server(mod, handler, pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        first = s.recv(10)
        pending = s.pending()
        rest = s.read(2000)
        s.sendall(b"done")
    return first, pending, len(rest), s.pending(), server.join()


@scenario
def flags_and_plain_only_calls(mod: Any, pki: Pki) -> Any:
    server = Server(mod, drain, pki.server_ctx())
    results = []
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        for call in (lambda: s.recv(10, kernel.MSG_PEEK), lambda: s.send(b"x", 1),
                     lambda: s.sendto(b"x", ("127.0.0.1", 9)), lambda: s.recvfrom(10),
                     lambda: s.recvmsg(10), lambda: s.sendmsg([b"x"]), lambda: s.dup()):
            try:
                call()
            except (ValueError, NotImplementedError) as exc:
                results.append(type(exc).__name__)
    return results, server.join()


# ------------------------------------------------------- EOF, shutdown, unwrap


@scenario
def ragged_eof(mod: Any, pki: Pki) -> Any:
    seen = []
    for suppress in (True, False):
        server = Server(mod, lambda c: c.sendall(b"bye"), pki.server_ctx())
        with pki.client_ctx().wrap_socket(connect(mod, server.port), server_hostname="localhost",
                                          suppress_ragged_eofs=suppress) as s:
            server.join()  # the server closed TCP without close_notify
            first = s.recv(10)
            try:
                second: Any = s.recv(10)
            except ssl.SSLError as exc:
                second = describe(exc)
            seen.append((first, second))
    return seen


@scenario
def close_notify_then_clear_text(mod: Any, pki: Pki) -> Any:
    """STARTTLS in reverse: both sides unwrap, then talk in clear on the same connection."""
    def handler(conn: Any) -> Any:
        assert conn.recv(10) == b"STOP"
        conn.sendall(b"ok")
        plain = conn.unwrap()
        got = plain.recv(100)
        plain.sendall(b"clear reply")
        return got, type(plain) is type(conn), plain.pending()

    server = Server(mod, handler, pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        s.sendall(b"STOP")
        assert s.recv(10) == b"ok"
        plain = s.unwrap()
        plain.sendall(b"clear request")
        reply = plain.recv(100)
        after = (plain.version(), plain.cipher(), plain.pending())
        try:
            plain.unwrap()
        except ValueError:
            after += ("no wrapper",)
    return reply, after, server.join()


@scenario
def clear_bytes_right_after_close_notify(mod: Any, pki: Pki) -> Any:
    """The peer's close_notify and its first clear bytes are already here when unwrap()
    runs: the clear bytes must come out of the next recv(), and select must see them."""
    notified, sent = threading.Event(), threading.Event()

    def handler(conn: Any) -> Any:
        assert notified.wait(20)
        plain = conn.unwrap()
        plain.sendall(b"clear at once")
        sent.set()
        return plain.recv(100)

    server = Server(mod, handler, pki.server_ctx())
    s = pki.client_ctx().wrap_socket(connect(mod, server.port), server_hostname="localhost")
    s.setblocking(False)
    try:
        s.unwrap()  # close_notify goes; the server's cannot have come yet
    except ssl.SSLWantReadError as exc:
        first = describe(exc)
    notified.set()
    assert sent.wait(20)
    s.setblocking(True)
    s.settimeout(20)
    plain = s.unwrap()
    readable = select.select([plain], [], [], 5)[0] == [plain]  # unpatched: the kernel's
    data = plain.recv(100)
    plain.sendall(b"thanks")
    plain.close()
    return first, readable, data, server.join()


@scenario
def peer_unwraps_then_read_gives_eof(mod: Any, pki: Pki) -> Any:
    def handler(conn: Any) -> Any:
        conn.sendall(b"last words")
        try:
            conn.unwrap()  # sends close_notify, waits for the client's
        except OSError as exc:
            return describe(exc)
        return "unwrapped"

    server = Server(mod, handler, pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        words = s.recv(100)
        eof = s.recv(100)  # close_notify: a clean b''
        s.unwrap()
    return words, eof, server.join()


@scenario
def shutdown_write_then_peer_reads_eof(mod: Any, pki: Pki) -> Any:
    server = Server(mod, drain, pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        s.sendall(b"before shutdown")
        s.shutdown(kernel.SHUT_WR)
        after = (s.version(), s.pending())
    return after, server.join()


# ---------------------------------------------------------- timeouts, blocking


@scenario
def read_timeout(mod: Any, pki: Pki) -> Any:
    server = Server(mod, drain, pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        s.settimeout(0.2)
        try:
            s.recv(10)
        except TimeoutError as exc:
            got = (type(exc).__name__, message(exc), exc.errno)
        s.settimeout(20)
        s.sendall(b"still usable")
    return got, server.join()


@scenario
def write_timeout_when_peer_does_not_read(mod: Any, pki: Pki) -> Any:
    release = threading.Event()

    def handler(conn: Any) -> Any:
        release.wait(30)
        return len(drain(conn)) > 0

    server = Server(mod, handler, pki.server_ctx())
    with pki.client_ctx().wrap_socket(connect(mod, server.port),
                                      server_hostname="localhost") as s:
        s.settimeout(0.5)
        try:
            s.sendall(b"x" * (64 << 20))  # far more than the socket buffers hold
        except TimeoutError as exc:
            got = (type(exc).__name__, message(exc))
        release.set()
    return got, server.join()


@scenario
def handshake_timeout(mod: Any, pki: Pki) -> Any:
    """The peer accepts TCP but never speaks TLS."""
    server = Server(mod, lambda c: drain(c)[:1])  # a ClientHello came: a handshake record
    sock = connect(mod, server.port, timeout=0.2)
    try:
        pki.client_ctx().wrap_socket(sock, server_hostname="localhost")
    except TimeoutError as exc:
        got = (type(exc).__name__, message(exc), exc.errno, sock._closed)
    finally:
        sock.close()
    return got, server.join()


@scenario
def handshake_deadline_covers_a_trickle(mod: Any, pki: Pki) -> Any:
    """The timeout bounds the whole handshake: a peer dribbling a byte every 50 ms (each
    recv would succeed in time) still makes it time out, long before its record ends."""
    def handler(conn: Any) -> Any:
        conn.recv(1000)  # the ClientHello
        conn.sendall(b"\x16\x03\x03\x00\xc8")  # a 200-byte handshake record...
        try:
            for _ in range(200):  # ... that takes 10 s to come
                conn.sendall(b"\x00")
                time.sleep(0.05)
        except OSError:
            return "client went away"
        return "sent it all"

    server = Server(mod, handler)
    sock = connect(mod, server.port, timeout=0.5)
    try:
        pki.client_ctx().wrap_socket(sock, server_hostname="localhost")
    except TimeoutError as exc:
        got = (type(exc).__name__, message(exc))
    finally:
        sock.close()
    return got, server.join()


@scenario
def not_tls_at_all(mod: Any, pki: Pki) -> Any:
    def handler(conn: Any) -> Any:
        conn.recv(1000)
        conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        return "answered"

    server = Server(mod, handler)
    sock = connect(mod, server.port)
    try:
        pki.client_ctx().wrap_socket(sock, server_hostname="localhost")
    finally:
        sock.close()
    return server.join()


@scenario
def nonblocking_handshake_and_io(mod: Any, pki: Pki) -> Any:
    plain_server = Server(mod, drain)
    sock = connect(mod, plain_server.port)
    sock.setblocking(False)
    try:
        pki.client_ctx().wrap_socket(sock, server_hostname="localhost")
    except ValueError as exc:
        refused = (str(exc), sock._closed, plain_server.join())
    server = Server(mod, echo_upper, pki.server_ctx())
    sock = connect(mod, server.port)
    sock.setblocking(False)
    s = pki.client_ctx().wrap_socket(sock, server_hostname="localhost",
                                     do_handshake_on_connect=False)
    wants = set()
    with s, selectors.DefaultSelector() as sel:
        while True:
            try:
                s.do_handshake()
                break
            except ssl.SSLWantReadError:
                wants.add("read")
                sel.register(s, selectors.EVENT_READ)
                assert sel.select(20), "no readiness while the handshake waits"
                sel.unregister(s)
            except ssl.SSLWantWriteError:
                wants.add("write")
                sel.register(s, selectors.EVENT_WRITE)
                assert sel.select(20)
                sel.unregister(s)
        try:
            s.recv(10)
        except ssl.SSLWantReadError as exc:
            early = describe(exc)
        s.send(b"nb")
        sel.register(s, selectors.EVENT_READ)
        assert sel.select(20)
        reply = b""
        while not reply:
            try:
                reply = s.recv(10)
            except ssl.SSLWantReadError:
                sel.select(20)
    # (whether the first call already wants to read depends on scheduling, on the kernel too:
    # tests/tls/test_nonblocking.py holds the server back to make it certain)
    return refused, wants <= {"read", "write"}, early, reply, server.join()


@scenario
def nonblocking_send_until_want_write(mod: Any, pki: Pki) -> Any:
    """The peer does not read: sends fill the pipe, then SSLWantWriteError; after the peer
    drains, retrying the same data succeeds and every accepted byte arrives."""
    go = threading.Event()
    chunk = b"w" * 65536

    def handler(conn: Any) -> Any:
        go.wait(60)
        got = 0
        while data := conn.recv(1 << 16):
            got += len(data)
        return got

    server = Server(mod, handler, pki.server_ctx())
    s = pki.client_ctx().wrap_socket(connect(mod, server.port), server_hostname="localhost")
    s.setblocking(False)
    accepted = 0
    stuck = None
    for _ in range(4096):  # 256 MiB at most: far beyond any socket buffer
        try:
            accepted += s.send(chunk)
        except ssl.SSLWantWriteError as exc:
            stuck = describe(exc)
            break
    go.set()
    with selectors.DefaultSelector() as sel:
        sel.register(s, selectors.EVENT_WRITE)
        while True:
            try:
                accepted += s.send(chunk)  # the same data again, as OpenSSL asks
                break
            except ssl.SSLWantWriteError:
                assert sel.select(20)
    s.setblocking(True)
    s.settimeout(20)
    # FIN after the data (a close() with the server's unread session tickets would reset)
    s.shutdown(kernel.SHUT_WR)
    result = server.join()
    s.close()
    return stuck, result == ("ok", accepted)


# ------------------------------------------------------------------ runner


@pytest.fixture(scope="module")
def virtual_host() -> Iterator[Any]:
    with patched_default_host(seed=12, name="tlsdiff", addresses=("10.6.0.1/24",),
                              patch=monkey.patch_ssl) as host:
        yield host


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_outcome_as_kernel(name: str, virtual_host: Any, pki: Pki) -> None:
    fn = SCENARIOS[name]
    expected = outcome(fn, kernel, pki)
    got = outcome(fn, msock, pki)
    assert got == expected, f"{name}:\n kernel    {expected!r}\n multisock {got!r}"


def test_scenarios_exercise_errors(virtual_host: Any, pki: Pki) -> None:
    """Guard against scenarios that prove nothing: the kernel runs must show the errors."""
    shown = repr([outcome(SCENARIOS[n], kernel, pki) for n in (
        "hostname_mismatch", "unknown_ca", "read_timeout", "ragged_eof",
        "client_certificate_missing_tls13", "nonblocking_send_until_want_write")])
    for expected in ("SSLCertVerificationError", "62", "20", "The read operation timed out",
                     "SSLEOFError", "TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLWantWriteError"):
        assert expected in shown, expected
