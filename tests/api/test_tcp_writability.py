"""select's write readiness of a TCP socket, side by side with the kernel on loopback.

Linux's tcp_poll says writable only while the free send-buffer space is at least half of
what is queued (``__sk_stream_is_writeable``: at most 2/3 of SO_SNDBUF holds data), while a
non-blocking send takes whatever fits. Fill a socket whose peer does not read, then read a
little at a time on the peer: select must stay "not writable" after the first bytes are
freed, until at most 2/3 is queued. Before, multisock said writable at the first free
byte. The queue is the kernel's SIOCOUTQ (payload bytes; the kernel's own rule counts
buffer overhead too, so payload is below it) and the stack's send queue on multisock:
byte counts differ, the rule is what is compared."""

from __future__ import annotations

import fcntl
import select as kernel_select
import socket as kernel
import struct
import termios
import time
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
import multisock.select as user_select
from tests.api.sidebyside import both


@pytest.fixture(scope="module")
def host() -> Iterator[Any]:
    net = multisock.Network(seed=41)
    yield net.add_host("w", "10.41.0.1/24")
    net.close()


def _queued(mod: Any, sock: Any) -> int:
    """Bytes sent but not acknowledged, or not sent yet."""
    if mod is kernel:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4)
        return int(struct.unpack("i", raw)[0])
    return int(sock._sock.tcb.sndq.size)


def _fill_and_drain(mod: Any) -> tuple[bool, bool, bool, bool]:
    sel = kernel_select if mod is kernel else user_select
    listener = mod.socket()
    listener.setsockopt(mod.SOL_SOCKET, mod.SO_RCVBUF, 65536)
    listener.setsockopt(mod.IPPROTO_TCP, mod.TCP_MAXSEG, 4096)  # (ACKs free small steps)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    cli = mod.socket()
    cli.setsockopt(mod.SOL_SOCKET, mod.SO_SNDBUF, 65536)
    cli.setsockopt(mod.IPPROTO_TCP, mod.TCP_MAXSEG, 4096)
    cli.connect(listener.getsockname())
    srv, _ = listener.accept()
    try:
        sndbuf = cli.getsockopt(mod.SOL_SOCKET, mod.SO_SNDBUF)
        cli.setblocking(False)
        sent = 0
        while True:  # until the receiver's window and our buffer are both full, settled
            n = 0
            try:
                while True:
                    n += cli.send(b"x" * 65536)
            except BlockingIOError:
                pass
            sent += n
            time.sleep(0.05)  # (the kernel's ACKs of what was in flight)
            if n == 0:
                break

        def writable() -> bool:
            return bool(sel.select([], [cli], [], 0)[1])

        full = _queued(mod, cli)
        full_not_writable = not writable()
        rule_held = True
        freed_yet_not_writable = False
        became_writable = False
        srv.settimeout(5)
        read = 0
        while read < sent and not became_writable:
            read += len(srv.recv(4096))
            became_writable = writable()
            queued = _queued(mod, cli)
            if became_writable and queued * 3 > sndbuf * 2:
                rule_held = False
            if not became_writable and queued < full:
                freed_yet_not_writable = True  # a send would take bytes; select says no
        return full_not_writable, rule_held, freed_yet_not_writable, became_writable
    finally:
        for s in (cli, srv, listener):
            s.close()


def test_writable_only_when_at_most_two_thirds_is_queued(host: Any) -> None:
    expected, got = both(_fill_and_drain, host)
    assert expected == ("ok", (True, True, True, True))
    assert got == expected


def _raise_sndbuf_while_waiting(mod: Any, blocked_send: bool) -> tuple[bool, list[Any]]:
    """A thread waits in select (or in a blocking send) for a full socket to take more;
    raising SO_SNDBUF from another thread wakes it (Linux's sock_setsockopt calls
    sk_write_space for that)."""
    import threading

    sel = kernel_select if mod is kernel else user_select
    listener = mod.socket()
    listener.setsockopt(mod.SOL_SOCKET, mod.SO_RCVBUF, 8192)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    cli = mod.socket()
    cli.setsockopt(mod.SOL_SOCKET, mod.SO_SNDBUF, 8192)
    cli.connect(listener.getsockname())
    srv, _ = listener.accept()
    try:
        cli.setblocking(False)
        while True:  # full, and settled: what was in flight has landed
            n = 0
            try:
                while True:
                    n += cli.send(b"x" * 65536)
            except BlockingIOError:
                pass
            time.sleep(0.05)
            if n == 0:
                break
        full_not_writable = not sel.select([], [cli], [], 0)[1]
        woken: list[Any] = []

        def wait_in_select() -> None:
            woken.append(bool(sel.select([], [cli], [], 60.0)[1]))

        def wait_in_send() -> None:
            try:
                woken.append(cli.send(b"y" * 65536))
            except OSError as exc:
                woken.append(type(exc).__name__)

        waiters = [threading.Thread(target=wait_in_select, daemon=True)]
        if blocked_send:
            cli.settimeout(60.0)
            waiters = [threading.Thread(target=wait_in_send, daemon=True)]
        for w in waiters:
            w.start()
        time.sleep(0.2)  # the waiter is asleep in select or send
        cli.setsockopt(mod.SOL_SOCKET, mod.SO_SNDBUF, 1 << 20)
        for w in waiters:
            # woken at once: ~0.3 s on both; a waiter nobody wakes is still asleep here
            # (its own timeout is 60 s), and the outcome says so: no answer yet
            w.join(timeout=20.0)
        return full_not_writable, list(woken)
    finally:
        for s in (cli, srv, listener):
            s.close()


def test_raising_sndbuf_wakes_a_waiting_select(host: Any) -> None:
    expected, got = both(lambda mod: _raise_sndbuf_while_waiting(mod, False), host)
    assert expected == ("ok", (True, [True]))
    assert got == expected


def test_raising_sndbuf_wakes_a_blocked_send(host: Any) -> None:
    expected, got = both(lambda mod: _raise_sndbuf_while_waiting(mod, True), host)
    assert expected == ("ok", (True, [65536]))  # all of it queued once the buffer grew
    assert got == expected
