"""Urgent data (MSG_OOB, SO_OOBINLINE, select's exceptional condition), side by side with
the kernel.

Linux's rules, measured here on both: ``send(data, MSG_OOB)`` makes the last byte urgent; a
plain read stops just before it and then steps over it (unless SO_OOBINLINE keeps it in the
stream); ``recv(1, MSG_OOB)`` returns it once (MSG_PEEK leaves it), and says EINVAL with
none pending, after it was read, after reads passed it, or with SO_OOBINLINE; select lists
the socket as exceptional until the byte is read. Before, MSG_OOB was ignored on send and
recv, and SO_OOBINLINE was a no-op.
"""

from __future__ import annotations

import ftplib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import multisock
import multisock.select as mselect
from tests.api.sidebyside import both, connected


@pytest.fixture(scope="module")
def host() -> Iterator[Any]:
    net = multisock.Network(seed=23)
    yield net.add_host("urgent", "10.23.2.1/24")
    net.close()


def _select_module(mod: Any) -> Any:
    import select

    return select if mod.__name__ == "socket" else mselect


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except OSError as exc:
        return (type(exc).__name__, exc.errno)


def _rest(sock: Any) -> bytes:
    """Everything up to EOF (chunk boundaries after the first read are the network's)."""
    data = b""
    while chunk := sock.recv(100):
        data += chunk
    return data


def urgent_scenario(inline: bool, read_oob_first: bool, peek: bool = False
                    ) -> Callable[[Any], Any]:
    def scenario(mod: Any) -> Any:
        sel = _select_module(mod)
        listener, client, server = connected(mod)
        with listener, client, server:
            if inline:
                server.setsockopt(mod.SOL_SOCKET, mod.SO_OOBINLINE, 1)
            out: list[Any] = [server.getsockopt(mod.SOL_SOCKET, mod.SO_OOBINLINE)]
            out.append(_try(lambda: server.recv(1, mod.MSG_OOB)))  # none yet: EINVAL
            server.settimeout(10)
            client.setsockopt(mod.IPPROTO_TCP, mod.TCP_NODELAY, 1)
            out.append(client.send(b"abc", mod.MSG_OOB))
            client.sendall(b"de")
            client.shutdown(mod.SHUT_WR)
            out.append(len(sel.select([], [], [server], 10)[2]))
            if peek:
                out.append(_try(lambda: server.recv(1, mod.MSG_OOB | mod.MSG_PEEK)))
                out.append(server.recv(100, mod.MSG_PEEK))
            if read_oob_first:
                out.append(_try(lambda: server.recv(1, mod.MSG_OOB)))
                out.append(len(sel.select([], [], [server], 0)[2]))
                out.append(_try(lambda: server.recv(1, mod.MSG_OOB)))  # read already: EINVAL
            out.append(server.recv(100))  # stops at the mark
            out.append(_rest(server))
            out.append(_try(lambda: server.recv(1, mod.MSG_OOB)))
            out.append(len(sel.select([], [], [server], 0)[2]))
            return out

    return scenario


@pytest.mark.parametrize(
    "inline,read_oob_first,peek",
    [(False, True, False), (False, False, False), (True, False, False), (True, True, False),
     (False, True, True)],
)
def test_urgent_like_kernel(inline: bool, read_oob_first: bool, peek: bool, host: Any) -> None:
    expected, got = both(urgent_scenario(inline, read_oob_first, peek), host)
    assert expected[0] == "ok"
    assert got == expected


def test_urgent_on_empty_blocking_socket(host: Any) -> None:
    """No urgent data: EINVAL at once, even on a blocking socket; at EOF likewise."""

    def scenario(mod: Any) -> Any:
        listener, client, server = connected(mod)
        with listener, client, server:
            first = _try(lambda: server.recv(1, mod.MSG_OOB))
            client.close()
            return first, _try(lambda: server.recv(1, mod.MSG_OOB)), server.recv(10)

    expected, got = both(scenario, host)
    assert got == expected


def test_urgent_with_timeout_waits_for_readable(host: Any) -> None:
    """CPython polls a socket with a timeout for POLLIN before recv(2): MSG_OOB with nothing
    to read times out (it does not say EINVAL); once data is there, EINVAL."""

    def scenario(mod: Any) -> Any:
        listener, client, server = connected(mod)
        with listener, client, server:
            server.settimeout(0.2)
            first = _try(lambda: server.recv(1, mod.MSG_OOB))
            client.sendall(b"x")
            return first, _try(lambda: server.recv(1, mod.MSG_OOB)), server.recv(10)

    expected, got = both(scenario, host)
    assert expected == ("ok", (("TimeoutError", None), ("OSError", 22), b"x"))
    assert got == expected


def ftp_abort(mod: Any) -> Any:
    """ftplib's abort() sends ABOR as urgent data; a server with SO_OOBINLINE reads the whole
    line in band and sees the socket exceptional first (what FTP servers select on)."""
    sel = _select_module(mod)
    listener = mod.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    seen: list[Any] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(mod.SOL_SOCKET, mod.SO_OOBINLINE, 1)
            conn.sendall(b"220 ready\r\n")
            seen.append(len(sel.select([], [], [conn], 10)[2]))
            line = b""
            while not line.endswith(b"\r\n"):
                line += conn.recv(100)
            seen.append(line)
            conn.sendall(b"226 aborted\r\n")

    thread = threading.Thread(target=serve)
    thread.start()
    saved = ftplib.socket
    ftplib.socket = mod  # type: ignore[attr-defined]
    try:
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", listener.getsockname()[1], timeout=10)
        reply = ftp.abort()
        ftp.close()
    finally:
        ftplib.socket = saved  # type: ignore[attr-defined]
        thread.join(10)
        listener.close()
    return reply, seen


def test_ftplib_abort_like_kernel(host: Any) -> None:
    expected, got = both(ftp_abort, host)
    assert expected == ("ok", ("226 aborted", [1, b"ABOR\r\n"]))
    assert got == expected
