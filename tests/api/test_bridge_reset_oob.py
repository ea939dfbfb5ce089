"""Bridged fd mode carries resets and urgent data like a kernel TCP socket, side by side.

The pair under a bridged socket is a loopback TCP connection (``api/kernel_pair.py``): the
relay closes its end abortively when the connection is reset, so the program's fd reports
the kernel's ECONNRESET/EPIPE sequence, and urgent bytes cross it with MSG_OOB both ways.
Each scenario runs on the kernel and on multisock with the multisock sockets bridged (the
peer too where ``peer_bridged``), and must give the same answers.
"""

from __future__ import annotations

import os
import select
import socket as kernel
import struct
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from multisock import select as mselect
from multisock.api.stream import FD_BRIDGED, SO_FD_MODE, SOL_MULTISOCK
from tests.api.sidebyside import both


@pytest.fixture(scope="module")
def host() -> Iterator[Any]:
    net = multisock.Network(seed=2323)
    yield net.add_host("bridged-reset", "10.23.4.1/24")
    net.close()


def _bridged(mod: Any, sock: Any, on: bool = True) -> None:
    if on and mod is not kernel:
        sock.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)


def _pair(mod: Any, peer_bridged: bool, client_bridged: bool = True) -> tuple[Any, Any]:
    """(client, peer) connected over loopback; the client bridged (its fd asked for, so the
    bridge exists), the peer (the accepted socket) bridged when ``peer_bridged``."""
    listener = mod.socket()
    _bridged(mod, listener, peer_bridged)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = mod.socket()
    _bridged(mod, client, client_bridged)
    client.connect(listener.getsockname())
    peer, _ = listener.accept()
    listener.close()
    client.fileno()
    peer.fileno()
    return client, peer


def _reset(sock: Any) -> None:
    """An abortive close: SO_LINGER {1, 0}."""
    sock.setsockopt(kernel.SOL_SOCKET, kernel.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _wait_readable(sock: Any) -> bool:
    """Until the fd is readable (data, EOF or an error): the kernel's own select on the
    number, which is a kernel socket in bridged mode."""
    return bool(select.select([sock.fileno()], [], [], 30)[0])


def _attempt(fn: Any) -> Any:
    try:
        return fn()
    except OSError as exc:
        return type(exc).__name__, exc.errno


BRIDGED = [pytest.param(False, id="peer-readiness"), pytest.param(True, id="peer-bridged")]


@pytest.mark.parametrize("peer_bridged", BRIDGED)
def test_reset_after_data_reads_data_then_econnreset(peer_bridged: bool, host: Any) -> None:
    """The peer sends, then resets: the reader gets the data, ECONNRESET, then EOF, through
    Python's recv and through os.read on the fd alike (before: EOF instead of the error)."""

    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, peer_bridged)
        with client:
            peer.sendall(b"data")
            _wait_readable(client)
            _reset(peer)
            first = client.recv(100)
            _wait_readable(client)
            fd = client.fileno()
            return first, _attempt(lambda: os.read(fd, 100)), client.recv(100)

    expected, got = both(scenario, host)
    assert expected == ("ok", (b"data", ("ConnectionResetError", 104), b""))
    assert got == expected


@pytest.mark.parametrize("peer_bridged", BRIDGED)
def test_send_after_reset_econnreset_then_epipe(peer_bridged: bool, host: Any) -> None:
    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, peer_bridged)
        with client:
            _reset(peer)
            _wait_readable(client)
            return (_attempt(lambda: client.send(b"x")), _attempt(lambda: client.send(b"x")),
                    client.recv(10))

    expected, got = both(scenario, host)
    assert expected == ("ok", (("ConnectionResetError", 104), ("BrokenPipeError", 32), b""))
    assert got == expected


def test_reset_with_full_window_delivers_what_arrived(host: Any) -> None:
    """The peer fills the window of a bridged socket that does not read, then resets: the
    reader gets data in order, then ECONNRESET (how much arrives before the reset is the
    buffers' business; on the kernel too it is not every byte the peer had sent)."""

    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, False)
        with client:
            pattern = bytes(range(251)) * 1024
            peer.setblocking(False)
            sent = 0
            try:
                while sent < 64 * 1024 * 1024:
                    sent += peer.send(pattern[sent % 251:][:65536])
            except BlockingIOError:
                pass
            _wait_readable(client)
            _reset(peer)
            got = b""
            try:
                while chunk := client.recv(1 << 20):
                    got += chunk
                end: Any = b""
            except OSError as exc:
                end = exc.errno
            whole = (pattern * (len(got) // len(pattern) + 2))[:len(got)]
            return len(got) > 0, got == whole, end

    expected, got = both(scenario, host)
    assert expected == ("ok", (True, True, 104))
    assert got == expected


def test_so_error_after_reset(host: Any) -> None:
    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, False)
        with client:
            _reset(peer)
            _wait_readable(client)
            return (client.getsockopt(kernel.SOL_SOCKET, kernel.SO_ERROR),
                    client.getsockopt(kernel.SOL_SOCKET, kernel.SO_ERROR), client.recv(10))

    expected, got = both(scenario, host)
    assert expected == ("ok", (104, 0, b""))
    assert got == expected


def test_reset_after_fin_is_epipe(host: Any) -> None:
    """FIN first, then a reset (Linux: sk_err EPIPE in CLOSE-WAIT): EOF stays EOF, and the
    next send says EPIPE."""

    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, False)
        with client:
            peer.shutdown(mod.SHUT_WR)
            eof = client.recv(10)
            _reset(peer)
            _wait_readable(client)
            return eof, client.recv(10), _attempt(lambda: client.send(b"x"))

    expected, got = both(scenario, host)
    assert expected == ("ok", (b"", b"", ("BrokenPipeError", 32)))
    assert got == expected


@pytest.mark.parametrize("peer_bridged", BRIDGED)
def test_close_with_unread_data_resets_peer(peer_bridged: bool, host: Any) -> None:
    """A bridged socket closed with bytes it never read resets the connection, as the
    kernel's close() does (the program's kernel end sends the relay a RST)."""

    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, peer_bridged)
        with peer:
            peer.sendall(b"unread")
            _wait_readable(client)
            client.close()
            _wait_readable(peer)
            return _attempt(lambda: peer.recv(10))

    expected, got = both(scenario, host)
    assert expected == ("ok", ("ConnectionResetError", 104))
    assert got == expected


# ---------------------------------------------------------------------- urgent data


def _send_with_urgent(sender: Any, mod: Any) -> None:
    sender.sendall(b"ab")
    sender.send(b"!", mod.MSG_OOB)
    sender.sendall(b"cd")
    sender.shutdown(mod.SHUT_WR)


def _read_to_eof(sock: Any) -> bytes:
    data = b""
    while chunk := sock.recv(100):
        data += chunk
    return data


@pytest.mark.parametrize("peer_bridged", BRIDGED)
def test_urgent_byte_reaches_bridged_reader(peer_bridged: bool, host: Any) -> None:
    """Urgent data from the peer is out of band on the bridged fd: select's exceptional list
    (kernel select on the number), recv(MSG_OOB), the stream read around it."""

    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, peer_bridged)
        with client, peer:
            _send_with_urgent(peer, mod)
            exceptional = select.select([], [], [client.fileno()], 30)[2]
            urgent = client.recv(1, mod.MSG_OOB)
            return len(exceptional), urgent, _read_to_eof(client)

    expected, got = both(scenario, host)
    assert expected == ("ok", (1, b"!", b"abcd"))
    assert got == expected


@pytest.mark.parametrize("before_connect", [False, True])
def test_urgent_inline_on_bridged_reader(before_connect: bool, host: Any) -> None:
    """SO_OOBINLINE set before the bridge exists (it moves to the program's end) or after."""

    def scenario(mod: Any) -> Any:
        listener = mod.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = mod.socket()
        _bridged(mod, client)
        if before_connect:
            client.setsockopt(mod.SOL_SOCKET, mod.SO_OOBINLINE, 1)
        client.connect(listener.getsockname())
        peer, _ = listener.accept()
        with listener, client, peer:
            client.fileno()
            if not before_connect:
                client.setsockopt(mod.SOL_SOCKET, mod.SO_OOBINLINE, 1)
            _send_with_urgent(peer, mod)
            select.select([], [], [client.fileno()], 30)
            return (client.getsockopt(mod.SOL_SOCKET, mod.SO_OOBINLINE) != 0,
                    _read_to_eof(client), _attempt(lambda: client.recv(1, mod.MSG_OOB)))

    expected, got = both(scenario, host)
    assert expected == ("ok", (True, b"ab!cd", ("OSError", 22)))
    assert got == expected


@pytest.mark.parametrize("via_fd", [False, True])
def test_urgent_byte_from_bridged_sender(via_fd: bool, host: Any) -> None:
    """send(MSG_OOB) on a bridged socket (Python's, or C's on the fd) reaches the peer (not
    bridged) as TCP urgent data: the relay finds the mark with SIOCATMARK."""

    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, False)
        with client, peer:
            if via_fd:
                sender = kernel.socket(fileno=os.dup(client.fileno()))
                _send_with_urgent(sender, kernel)
                sender.close()
            else:
                _send_with_urgent(client, mod)
            exceptional = (select if mod is kernel else mselect).select([], [], [peer], 30)[2]
            urgent = peer.recv(1, mod.MSG_OOB)
            return len(exceptional), urgent, _read_to_eof(peer)

    expected, got = both(scenario, host)
    assert expected == ("ok", (1, b"!", b"abcd"))
    assert got == expected


# ------------------------------------------------------------------ AF_UNIX fallback


@pytest.fixture
def no_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback refused (as in a namespace whose ``lo`` is down): the pair is AF_UNIX."""
    from multisock.api import kernel_pair

    def refuse() -> Any:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(kernel_pair, "_loopback_pair", refuse)


def test_unix_fallback_carries_bytes_and_reader_reset(no_loopback: None, host: Any) -> None:
    """Without loopback the bridge still carries the bytes; a reset still reaches a reader
    as ECONNRESET after the data while the Python object is open (AF_UNIX reports it when
    the closing end leaves unread bytes)."""

    def scenario(mod: Any) -> Any:
        client, peer = _pair(mod, False)
        with client:
            if mod is not kernel:
                assert client.family == kernel.AF_INET
                with kernel.socket(fileno=os.dup(client.fileno())) as end:
                    assert end.family == kernel.AF_UNIX
            peer.sendall(b"data")
            os.write(client.fileno(), b"up")
            up = peer.recv(10)
            _wait_readable(client)
            _reset(peer)
            return up, client.recv(100), _attempt(lambda: client.recv(100)), client.recv(100)

    expected, got = both(scenario, host)
    assert expected == ("ok", (b"up", b"data", ("ConnectionResetError", 104), b""))
    assert got == expected
