"""gevent's own APIs on multisock sockets: wait_read/wait_write, gevent.Timeout around
recv and connect, gevent.select (mixed with kernel fds), Pool, DatagramServer, close() from
another greenlet, use_host per greenlet, https through pywsgi, AF_UNIX staying cooperative,
device-fd watchers, and a closed network leaving nothing on the hub. Each check prints one
line ``CHECK name: ok|FAIL detail``; the test wants all ok."""

from __future__ import annotations

import errno
import gc
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup(os.environ.get("ORDER", "gevent-first"))

import socket  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import gevent.select  # noqa: E402
import gevent.server  # noqa: E402
import gevent.socket  # noqa: E402

import multisock  # noqa: E402

CHECKS: list[tuple[str, bool, str]] = []


def check(name: str):  # type: ignore[no-untyped-def]
    def run(func):  # type: ignore[no-untyped-def]
        try:
            with gevent.Timeout(20):
                detail = func()
            CHECKS.append((name, True, str(detail or "")))
        except BaseException as exc:  # noqa: BLE001 - reported
            CHECKS.append((name, False, f"{exc!r} {traceback.format_exc()[-600:]}"))
        return func
    return run


def pair() -> tuple[socket.socket, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return client, server


@check("classes")
def _() -> str:
    assert socket.socket is multisock.socket.socket is gevent.socket.socket
    assert gevent.server.GeventSocket is multisock.socket.socket
    assert common.network_kind() == "multisock.socket/gevent", common.network_kind()
    # no OS thread runs the stack: the driver's time lives on the hub
    from multisock.runtime import default_host

    driver = default_host().driver
    assert type(driver).__name__ == "GeventDriver" and driver._runner is None
    return common.network_kind()


@check("wait_read")
def _() -> str:
    a, b = pair()
    gevent.spawn_later(0.1, a.sendall, b"x")
    t0 = time.monotonic()
    gevent.socket.wait_read(b.fileno(), timeout=10)
    waited = time.monotonic() - t0
    assert b.recv(1) == b"x"
    try:
        gevent.socket.wait_read(b.fileno(), timeout=0.1)
        raise AssertionError("wait_read on an empty socket returned")
    except TimeoutError:
        pass
    a.close()
    b.close()
    return f"waited {waited:.3f}s"


@check("wait_write blocks while the send buffer is full")
def _() -> str:
    a, b = pair()
    a.setblocking(False)
    sent = 0
    try:
        while True:
            sent += a.send(b"y" * 65536)
    except BlockingIOError:
        pass
    try:
        gevent.socket.wait_write(a.fileno(), timeout=0.1)
        raise AssertionError("wait_write returned with a full send buffer")
    except TimeoutError:
        pass

    def drain() -> None:
        got = 0
        while got < sent:
            got += len(b.recv(1 << 20))
    reader = gevent.spawn(drain)
    gevent.socket.wait_write(a.fileno(), timeout=10)
    assert a.send(b"z") == 1
    reader.join(10)
    a.close()
    b.close()
    return f"filled {sent} bytes"


@check("gevent.Timeout around recv")
def _() -> str:
    a, b = pair()
    t0 = time.monotonic()
    with gevent.Timeout(0.2, False):
        b.recv(10)
        raise AssertionError("recv returned")
    waited = time.monotonic() - t0
    a.sendall(b"after")  # the socket is still usable after the timeout
    assert b.recv(10) == b"after"
    try:
        with gevent.Timeout(0.1):
            b.recv(10)
        raise AssertionError("no timeout")
    except gevent.Timeout:
        pass
    a.close()
    b.close()
    return f"{waited:.3f}s"


@check("gevent.Timeout around connect")
def _() -> str:
    net = multisock.Network(seed=7)
    assert net.driver.backend == "gevent"
    near = net.add_host("near", "10.9.0.1/24")
    far = net.add_host("far", "10.9.0.2/24")
    net.link(near, far, loss="100%")  # SYNs never arrive
    sock = near.socket()
    t0 = time.monotonic()
    try:
        with gevent.Timeout(0.3):
            sock.connect(("10.9.0.2", 80))
        raise AssertionError("connect returned")
    except gevent.Timeout:
        pass
    waited = time.monotonic() - t0
    sock.close()
    # socket-level timeout on connect through gevent.socket.create_connection
    try:
        with multisock.runtime.use_host(near):
            gevent.socket.create_connection(("10.9.0.2", 80), timeout=0.2)
        raise AssertionError("create_connection returned")
    except TimeoutError:
        pass
    net.close()
    return f"{waited:.3f}s"


@check("gevent.select: read and write readiness")
def _() -> str:
    a, b = pair()
    r, w, _ = gevent.select.select([b], [a], [], 1)
    assert r == [] and w == [a], (r, w)
    gevent.spawn_later(0.1, a.sendall, b"q")
    r, w, _ = gevent.select.select([b], [], [], 10)
    assert r == [b]
    r, w, _ = gevent.select.select([b.fileno()], [], [], 0)
    assert r == [b.fileno()]
    b.recv(1)
    r, w, _ = gevent.select.select([b], [], [], 0.1)
    assert r == []
    # mixed with a kernel fd: whichever becomes readable first is reported
    u1, u2 = socket.socketpair()
    gevent.spawn_later(0.1, u1.sendall, b"k")
    r, w, _ = gevent.select.select([b, u2], [], [], 10)
    assert r == [u2], r
    gevent.spawn_later(0.1, a.sendall, b"m")
    r, w, _ = gevent.select.select([b, u1], [], [], 10)
    assert r == [b], r
    for s in (u1, u2, a, b):
        s.close()
    return "userspace, kernel and mixed"


@check("close from another greenlet wakes a blocked recv with EBADF")
def _() -> str:
    out = []
    for kind in ("stream", "dgram"):
        if kind == "stream":
            a, b = pair()
            others = [a]
        else:
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            b.bind(("127.0.0.1", 0))
            others = []
        gevent.spawn_later(0.1, b.close)
        try:
            b.recv(10)
            raise AssertionError("recv returned")
        except OSError as exc:
            assert exc.errno == errno.EBADF, exc
            out.append(f"{kind}:{errno.errorcode[exc.errno]}")
        for s in others:
            s.close()
    a, b = pair()
    gevent.spawn_later(0.1, b.close)
    try:
        gevent.socket.wait_read(b.fileno(), timeout=10)
        raise AssertionError("wait_read returned")
    except OSError as exc:
        assert exc.errno == errno.EBADF, exc
        out.append("wait_read:EBADF")
    a.close()
    return " ".join(out)


@check("Pool.map over sockets")
def _() -> str:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)

    def serve() -> None:
        while True:
            conn, _ = listener.accept()
            gevent.spawn(lambda c: (c.sendall(c.recv(100)[::-1]), c.close()), conn)
    acceptor = gevent.spawn(serve)
    address = listener.getsockname()

    def ask(i: int) -> bytes:
        with gevent.socket.create_connection(address) as s:
            s.sendall(b"%05d" % i)
            return s.recv(100)
    got = gevent.pool.Pool(20).map(ask, range(100))
    assert got == [(b"%05d" % i)[::-1] for i in range(100)]
    acceptor.kill()
    listener.close()
    return "100 answers"


@check("DatagramServer")
def _() -> str:
    replies = []
    server = gevent.server.DatagramServer(("127.0.0.1", 0),
                                          lambda data, addr: server.sendto(data.upper(), addr))
    server.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    for i in range(20):
        sock.sendto(b"dg%d" % i, server.address)
        replies.append(sock.recv(100))
    assert replies == [b"DG%d" % i for i in range(20)]
    server.stop()
    sock.close()
    return "20 replies"


@check("use_host is per greenlet")
def _() -> str:
    net = multisock.Network(seed=3)
    hosts = [net.add_host(f"g{i}", f"10.8.0.{i + 1}/24") for i in range(2)]
    seen: list[tuple[str, str]] = []

    def make(host: multisock.Host) -> None:
        with multisock.runtime.use_host(host):
            gevent.sleep(0.05)  # the other greenlet enters its own use_host meanwhile
            sock = socket.socket()
            seen.append((host.name, sock._sock.host.name))
            sock.close()
    gevent.joinall([gevent.spawn(make, h) for h in hosts])
    net.close()
    assert sorted(seen) == [("g0", "g0"), ("g1", "g1")], seen
    return str(seen)


@check("https: pywsgi with an ssl_context, requests clients, concurrently")
def _() -> str:
    import ssl

    import gevent.pywsgi
    import requests
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)

    inside = [0, 0]  # requests in the app now, the most at once

    def app(environ: dict, start_response: object) -> list[bytes]:
        inside[0] += 1
        inside[1] = max(inside)
        gevent.sleep(0.2)
        inside[0] -= 1
        start_response("200 OK", [("Content-Length", "6")])  # type: ignore[operator]
        return [b"secure"]
    import gevent.pool

    # Once an open question: in this script most of the 20 client connections stayed
    # ESTABLISHED after requests.get() returned, until garbage collection closed them. Cause
    # (multisock's): each TLS read that found nothing yet raised a BlockingIOError that the
    # facade's recv_into frame kept naming after raising it (and the TLS channel kept its
    # SSLWantReadError the same way), a reference cycle that pinned the whole calling stack,
    # urllib3's pool included, which closes its connections only when it is freed. Alone the
    # check looked fine because the young cycles were collected in time; here the earlier
    # checks left enough long-lived objects that the collections came late. With the kernel
    # the same program (gevent only, collector off) closed all 20 at once. Fixed; tests in
    # tests/api/test_error_cycles.py and tests/tls/test_error_cycles.py. So every handler
    # now sees its client's EOF and ends, and none may fail (pywsgi closes the socket's _sock
    # before the server closes the socket: that must stay silent, as it is on the kernel).
    handlers = gevent.pool.Pool(100)
    failed: list[str] = []

    def spawn(func: object, *args: object) -> gevent.Greenlet:
        handler = handlers.spawn(func, *args)
        handler.link_exception(lambda g: failed.append(repr(g.exception)))
        return handler

    server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), app, ssl_context=server_ctx, log=None,
                                      spawn=spawn)
    server.start()
    url = f"https://localhost:{server.address[1]}/"
    gc.disable()  # a connection closes when the program drops it, not when a collection runs
    try:
        with ca.cert_pem.tempfile() as ca_path:
            t0 = time.monotonic()
            jobs = [gevent.spawn(lambda: requests.get(url, verify=ca_path, timeout=20).text)
                    for _ in range(20)]
            gevent.joinall(jobs, timeout=30)
            elapsed = time.monotonic() - t0
        handlers.join(timeout=15)  # returns as soon as every handler has seen its client's EOF
        waiting = len(handlers)
    finally:
        gc.enable()
    handlers.kill(timeout=5)
    server.stop(timeout=1.0)
    assert [j.value for j in jobs] == ["secure"] * 20, [repr(j.exception) for j in jobs][:3]
    # overlapped, not one after another: counted, since a wall-clock bound fails under load
    assert inside[1] >= 2, inside
    assert waiting == 0, f"{waiting} handlers still wait for a client that returned"
    assert failed == [], failed
    return f"20 in {elapsed:.2f}s, {inside[1]} at once; every handler saw its client close"


@check("device fds (the TUN path) are io watchers on the hub")
def _() -> str:
    net = multisock.Network(seed=5)
    driver = net.driver
    r, w = os.pipe2(os.O_NONBLOCK)
    got: list[bytes] = []

    def readable() -> None:  # runs with the driver lock held, like TunLink's reader
        got.append(os.read(r, 100))
    driver.add_reader(r, readable)
    gevent.spawn_later(0.05, os.write, w, b"frame")
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        gevent.sleep(0.01)
    driver.remove_reader(r)
    os.write(w, b"late")
    gevent.sleep(0.1)
    net.close()
    os.close(r)
    os.close(w)
    assert got == [b"frame"], got
    return "read once, nothing after remove_reader"


@check("Network.close() leaves no timer or watcher on the hub")
def _() -> str:
    net = multisock.Network(seed=6)
    host = net.add_host("t", "10.7.0.1/24")
    listener = host.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = host.socket()
    client.connect(listener.getsockname())
    client.sendall(b"x")  # a delayed ACK and friends: timers pending on the hub
    driver = net.driver
    armed = driver._timer is not None and driver.pending_timers() > 0
    net.close()
    assert armed and driver._timer is None and driver.pending_timers() == 0
    assert not driver._io
    return "armed before, nothing after"


@check("kernel families (AF_UNIX) stay cooperative")
def _() -> str:
    import tempfile

    a, b = socket.socketpair()  # AF_UNIX: the kernel's, through multisock's class
    assert not a._is_userspace
    ticker = common.Ticker(0.01)
    reader = gevent.spawn(b.recv, 10)  # parks on the hub, not on the thread
    gevent.sleep(0.3)
    ticks = ticker.ticks
    a.sendall(b"unix")
    assert reader.get(timeout=10) == b"unix"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen()
        acceptor = gevent.spawn(server.accept)  # blocks cooperatively too
        gevent.sleep(0.1)
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        conn, _ = acceptor.get(timeout=10)
        client.sendall(b"hi")
        assert conn.recv(10) == b"hi" and isinstance(conn, socket.socket)
        for s in (conn, client, server):
            s.close()
    ticker.stop()
    a.close()
    b.close()
    assert ticks >= 10, ticks  # the hub kept running while recv waited
    return f"{ticks} ticks while recv waited"


for name, ok, detail in CHECKS:
    print(f"CHECK {name}: {'ok' if ok else 'FAIL'} {detail}")
print("LEAKED", common.leaked_greenlets())
common.report(failed=[n for n, ok, _ in CHECKS if not ok], checks=len(CHECKS))
