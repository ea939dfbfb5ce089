"""Forked children, side by side with the kernel: select on an inherited socket wakes on
writability (and readability), accept() on an inherited listener works (a preforking
server), and a grandchild's calls fail clearly instead of corrupting the child's channel.

Before: a child's select never woke for an inherited userspace socket (no watcher in the
child can hear the parent's stack) and accept() raised EOPNOTSUPP.
"""

from __future__ import annotations

import errno
import os
import socket as kernel
import time
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
import multisock.select as mselect
import multisock.socket as msock
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=31)
    h = net.add_host("forker", "10.31.0.1/24")
    with use_host(h):
        yield h
    net.close()


def _fork(body: Any) -> tuple[int, int]:
    """(pid, read end of a pipe on which the child writes its report)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            report = body()
        except BaseException as exc:  # noqa: BLE001 - reported through the pipe
            report, code = f"{type(exc).__name__}: {exc}", 1
        os.write(w, repr(report).encode())
        os._exit(code)
    os.close(w)
    return pid, r


def _report(pid: int, r: int) -> Any:
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return eval(data.decode())  # noqa: S307 - the child's repr of plain values


def _pair(mod: Any) -> tuple[Any, Any, Any]:
    listener = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = mod.create_connection(listener.getsockname(), timeout=30)
    server, _ = listener.accept()
    return listener, client, server


def _small_pair(mod: Any) -> tuple[Any, Any, Any]:
    """A connection whose sender (``server``) has a small send buffer and whose peer
    (``client``) a small receive buffer from the handshake on, so that the window it
    advertises is small. (Set after connect(), SO_RCVBUF does not shrink the stack's
    advertised window; the peer then took megabytes and acknowledged the last segment 40 ms
    later - a delayed ACK that emptied the sender's buffer, so what a child's first select
    said depended on whether the fork took longer than that. The kernel's peer drops such
    data and never acknowledges it: the sender stays full.)"""
    listener = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    listener.setsockopt(mod.SOL_SOCKET, mod.SO_SNDBUF, 4096)  # (inherited by accept)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    client.setsockopt(mod.SOL_SOCKET, mod.SO_RCVBUF, 4096)
    client.settimeout(30)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def _fill(sock: Any) -> int:
    """Send until the buffer is full and stays full: rounds of non-blocking sends, each
    after a pause longer than a delayed ACK (40 ms), until one takes nothing."""
    sock.setblocking(False)
    sent = 0
    while True:
        n = 0
        try:
            while True:
                n += sock.send(b"x" * 65536)
        except BlockingIOError:
            pass
        sent += n
        if n == 0 and sent:
            return sent
        time.sleep(0.1)


def select_wakes_on_writability(mod: Any, select: Any) -> Any:
    listener, client, server = _small_pair(mod)
    sent = _fill(server)

    go_r, go_w = os.pipe()

    def child() -> Any:
        r0, w0, _ = select([], [server], [], 0)
        os.write(go_w, b"!")
        r1, w1, _ = select([server], [server], [], 60)  # the parent drains the peer
        return len(w0), len(w1), len(r1)

    pid, pipe = _fork(child)
    os.read(go_r, 1)  # the child has looked once: now make room
    os.close(go_r)
    os.close(go_w)
    got = 0
    while got < sent:
        got += len(client.recv(65536))
    report = _report(pid, pipe)
    for s in (listener, client, server):
        s.close()
    return report


def select_sees_the_parent_fill_the_buffer(mod: Any, select: Any) -> Any:
    """Forked first, then the parent fills the socket: the child's select must see it full
    at once. Before, the relay (the write-readiness eventfd) was updated by the stack's
    change callbacks, which say when room appears, never when a send takes it: it stayed
    "writable" until some ACK came."""
    listener, client, server = _small_pair(mod)
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()

    def child() -> Any:
        before = select([], [server], [], 0)[1]
        os.write(done_w, b"!")
        os.read(go_r, 1)  # the parent has filled it
        full = select([], [server], [], 0)[1]
        os.write(done_w, b"!")
        later = select([], [server], [], 60)[1]  # the parent drains the peer
        return len(before), len(full), len(later)

    pid, pipe = _fork(child)
    os.read(done_r, 1)
    sent = _fill(server)
    os.write(go_w, b"!")
    os.read(done_r, 1)
    got = 0
    while got < sent:
        got += len(client.recv(65536))
    report = _report(pid, pipe)
    for fd in (go_r, go_w, done_r, done_w):
        os.close(fd)
    for s in (listener, client, server):
        s.close()
    return report


def select_wakes_on_readability(mod: Any, select: Any) -> Any:
    listener, client, server = _pair(mod)

    go_r, go_w = os.pipe()

    def child() -> Any:
        r0, _, _ = select([server], [], [], 0)
        os.write(go_w, b"!")
        r1, _, _ = select([server], [], [], 60)
        return len(r0), len(r1), server.recv(10)

    pid, pipe = _fork(child)
    os.read(go_r, 1)  # the child has looked once: now send
    os.close(go_r)
    os.close(go_w)
    client.sendall(b"wake up")
    report = _report(pid, pipe)
    for s in (listener, client, server):
        s.close()
    return report


def preforked_accept(mod: Any, select: Any) -> Any:
    listener = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def worker() -> Any:
        conn, peer = listener.accept()
        with conn:
            line = conn.recv(100)
            conn.sendall(b"served " + line)
            return peer[0], conn.getsockname() == listener.getsockname()

    children = [_fork(worker) for _ in range(2)]
    replies = []
    for i in range(2):
        with mod.create_connection(listener.getsockname(), timeout=30) as c:
            c.sendall(b"%d" % i)
            replies.append(c.recv(100))
    reports = [_report(pid, pipe) for pid, pipe in children]
    listener.close()
    return sorted(replies), reports


@pytest.mark.parametrize("scenario", [
    select_wakes_on_writability, select_sees_the_parent_fill_the_buffer,
    select_wakes_on_readability, preforked_accept], ids=lambda f: f.__name__)
def test_same_as_kernel(scenario: Any, host: multisock.Host) -> None:
    import select as kernel_select

    expected = scenario(kernel, kernel_select.select)
    got = scenario(msock, mselect.select)
    assert got == expected


def test_grandchild_gets_a_clear_error(host: multisock.Host) -> None:
    listener, client, server = _pair(msock)

    def child() -> Any:
        def grandchild() -> Any:
            try:
                server.send(b"from the grandchild")
            except OSError as exc:
                return exc.errno, "direct child" in str(exc)
            return "sent"

        pid, pipe = _fork(grandchild)
        inner = _report(pid, pipe)
        server.sendall(b"child still works")
        return inner

    pid, pipe = _fork(child)
    assert _report(pid, pipe) == (errno.EBADF, True)
    assert client.recv(100) == b"child still works"
    for s in (listener, client, server):
        s.close()
