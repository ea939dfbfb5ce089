"""Bridged fd mode for UDP, side by side with the kernel: datagrams on ``fileno()``.

With the readiness eventfd, ``os.read``/``os.write`` on a UDP socket's fd read and write an
eventfd counter. In bridged mode the fd is an AF_UNIX datagram pair end the stack relays
(``api/dgram_bridge.py``), so C-level I/O exchanges real datagrams, boundaries kept, while the
Python object's recvfrom still names each datagram's source.
"""

from __future__ import annotations

import errno
import os
import select
import socket as kernel
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import multisock
from multisock.api.stream import FD_BRIDGED, FD_READINESS, SO_FD_MODE, SOL_MULTISOCK
from tests.api.sidebyside import both

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def host() -> Iterator[Any]:
    net = multisock.Network(seed=23)
    yield net.add_host("udpbridged", "10.23.4.1/24")
    net.close()


def _bridged(mod: Any, sock: Any) -> None:
    if mod is not kernel:
        sock.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)


def _udp(mod: Any, bridged: bool = False) -> Any:
    sock = mod.socket(mod.AF_INET, mod.SOCK_DGRAM)
    if bridged:
        _bridged(mod, sock)
    sock.bind(("127.0.0.1", 0))
    return sock


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 10)[0])


def connected_io(early_fd: bool) -> Any:
    def scenario(mod: Any) -> Any:
        a, b = _udp(mod, bridged=True), _udp(mod)
        with a, b:
            if early_fd:
                a.fileno()  # the fd asked for before connect
            a.connect(b.getsockname())
            b.connect(a.getsockname())
            fd = a.fileno()
            out: list[Any] = []
            for data in (b"one", b"two", b"", b"three"):
                b.send(data)
            out.append(_readable(fd))
            out.append(os.read(fd, 100))
            out.append(os.read(fd, 100))
            out.append(os.read(fd, 100))  # an empty datagram is one too
            out.append(os.read(fd, 2))  # truncated: the rest of the datagram is gone
            out.append(select.select([], [fd], [], 0)[1] == [fd])
            os.write(fd, b"from C")
            os.write(fd, b"again")
            b.settimeout(10)
            data, source = b.recvfrom(100)
            out.append((data, source == a.getsockname()))
            out.append(b.recv(100))
            # Python and C reading one queue, in order; recvfrom names the source
            for data in (b"c1", b"p1", b"p2"):
                b.send(data)
            a.settimeout(10)
            out.append(_readable(fd) and os.read(fd, 100))
            out.append(a.recv(100, mod.MSG_PEEK))
            data, source = a.recvfrom(100)
            out.append((data, source == b.getsockname()))
            out.append(a.recv(100))
            # Python's send after C's writes keeps their order
            os.write(fd, b"c-first")
            a.send(b"py-second")
            out.append([b.recv(100), b.recv(100)])
            # non-blocking: the fd's O_NONBLOCK follows the socket's, as CPython's does
            a.setblocking(False)
            for call in (lambda: os.read(fd, 100), lambda: a.recv(100)):
                try:
                    call()
                except BlockingIOError as exc:
                    out.append(exc.errno)
        out.append(a.fileno())
        try:
            os.fstat(fd)
        except OSError as exc:
            out.append(exc.errno)
        return out

    return scenario


@pytest.mark.parametrize("early_fd", [False, True])
def test_connected_c_level_io_like_kernel(early_fd: bool, host: Any) -> None:
    expected, got = both(connected_io(early_fd), host)
    assert expected == ("ok", [
        True, b"one", b"two", b"", b"th", True, (b"from C", True), b"again",
        b"c1", b"p1", (b"p1", True), b"p2", [b"c-first", b"py-second"],
        11, 11, -1, 9,
    ])
    assert got == expected


def unconnected_sources(mod: Any) -> Any:
    """Two senders to one unconnected bridged socket: C reads one datagram, Python's
    recvfrom/recvmsg then name each remaining datagram's own source."""
    a, b, c = _udp(mod, bridged=True), _udp(mod), _udp(mod)
    with a, b, c:
        fd = a.fileno()
        where = a.getsockname()
        b.sendto(b"from b 1", where)
        c.sendto(b"from c", where)
        b.sendto(b"from b 2", where)
        c.sendto(b"from b 2", where)  # the same payload from another source
        a.settimeout(10)
        out: list[Any] = [_readable(fd) and os.read(fd, 100)]
        for _ in range(2):
            data, source = a.recvfrom(100)
            out.append((data, source == b.getsockname(), source == c.getsockname()))
        data, _, flags, source = a.recvmsg(100)
        out.append((data, flags, source == c.getsockname()))
        return out


def test_unconnected_sources_like_kernel(host: Any) -> None:
    expected, got = both(unconnected_sources, host)
    assert expected == ("ok", [
        b"from b 1", (b"from c", False, True), (b"from b 2", True, False),
        (b"from b 2", 0, True),
    ])
    assert got == expected


def full_receive_buffer(mod: Any) -> Any:
    """Nobody reads: once the receive buffer is full, new datagrams are dropped (UDP has no
    backpressure); what is read after is a prefix of what was sent, in order."""
    a, b = _udp(mod, bridged=True), _udp(mod)
    with a, b:
        fd = a.fileno()
        a.connect(b.getsockname())
        b.connect(a.getsockname())
        total = 3000
        for n in range(total):
            b.send(n.to_bytes(4, "big") * 250)
        a.setblocking(False)
        got = []
        while True:
            try:
                data = os.read(fd, 2000)
            except BlockingIOError:
                break
            got.append(int.from_bytes(data[:4], "big"))
            if len(data) != 1000:
                return "boundary lost"
        return got == list(range(len(got))), 0 < len(got) < total


def test_full_receive_buffer_drops_like_kernel(host: Any) -> None:
    expected, got = both(full_receive_buffer, host)
    assert got == expected == ("ok", (True, True))


def test_drops_are_counted(host: Any) -> None:
    """The stack drops at its receive buffer, with the pair full, and counts it."""
    with multisock.runtime.use_host(host):
        a = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        b = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        with a, b:
            _bridged(multisock.socket, a)
            a.bind(("127.0.0.1", 0))
            a.fileno()
            for _ in range(3000):
                b.sendto(bytes(1000), a.getsockname())
            counters = a._sock.ep.counters
            assert counters["rx_dropped"] > 0
            assert counters["rx"] + counters["rx_dropped"] == 3000


def test_unconnected_write_is_dropped_and_counted(host: Any) -> None:
    """A write on the fd of an unconnected socket has no destination (the kernel's send()
    says EDESTADDRREQ; the AF_UNIX end cannot): the relay drops it and counts it."""
    with multisock.runtime.use_host(host):
        a = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        with a:
            _bridged(multisock.socket, a)
            a.bind(("127.0.0.1", 0))
            os.write(a.fileno(), b"nowhere")
            with pytest.raises(OSError) as info:
                a.send(b"nowhere")  # (Python's own send passes the fd's writes on first)
            assert info.value.errno == errno.EDESTADDRREQ
            assert a._sock.ep.counters["tx_dropped"] == 1


def shutdown_sides(mod: Any) -> Any:
    """shutdown() reaches C code on the fd: after SHUT_WR a write is EPIPE, as Python's send."""
    a, b = _udp(mod, bridged=True), _udp(mod)
    with a, b:
        fd = a.fileno()
        out: list[Any] = []
        try:
            a.shutdown(mod.SHUT_WR)  # not connected yet
        except OSError as exc:
            out.append(exc.errno)
        a.connect(b.getsockname())
        a.shutdown(mod.SHUT_WR)
        for call in (lambda: os.write(fd, b"x"), lambda: a.send(b"x")):
            try:
                call()
            except OSError as exc:
                out.append(exc.errno)
        return out


def test_shutdown_like_kernel(host: Any) -> None:
    expected, got = both(shutdown_sides, host)
    assert expected == ("ok", [errno.ENOTCONN, errno.EPIPE, errno.EPIPE])
    assert got == expected


def recv_times_out(mod: Any) -> Any:
    a = _udp(mod, bridged=True)
    with a:
        a.fileno()
        a.settimeout(0.05)
        return a.recvfrom(10)


def test_recv_timeout_like_kernel(host: Any) -> None:
    expected, got = both(recv_times_out, host)
    assert expected == ("TimeoutError", None)
    assert got == expected


def test_multisock_select_on_bridged_socket(host: Any) -> None:
    """multisock's select waits on a bridged socket in the kernel (its fd is a kernel socket
    the relay fills), for the socket object and for its number alike."""
    from multisock import select as mselect

    with multisock.runtime.use_host(host):
        a = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        b = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        with a, b:
            _bridged(multisock.socket, a)
            a.bind(("127.0.0.1", 0))
            assert mselect.select([a], [], [], 0)[0] == []
            b.sendto(b"wake", a.getsockname())
            assert mselect.select([a], [a], [], 10)[:2] == ([a], [a])
            assert mselect.select([a.fileno()], [], [], 10)[0] == [a.fileno()]
            assert a.recv(10) == b"wake"
            assert mselect.select([a], [], [], 0)[0] == []


def test_mode_set_after_fd_keeps_the_number(host: Any) -> None:
    """The readiness eventfd was handed out first: the pair takes over its number (dup2)."""
    with multisock.runtime.use_host(host):
        a = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        b = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        with a, b:
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            fd = a.fileno()
            a.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)
            assert a.fileno() == fd
            a.connect(b.getsockname())
            os.write(fd, b"same number")
            b.settimeout(10)
            assert b.recvfrom(100) == (b"same number", a.getsockname())


def test_option_round_trip_and_readiness_default(host: Any) -> None:
    with multisock.runtime.use_host(host):
        sock = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        with sock:
            assert sock.getsockopt(SOL_MULTISOCK, SO_FD_MODE) == FD_READINESS
            with pytest.raises(OSError):
                sock.setsockopt(SOL_MULTISOCK, SO_FD_MODE, 7)
            sock.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)
            assert sock.getsockopt(SOL_MULTISOCK, SO_FD_MODE) == FD_BRIDGED
            fd = sock.fileno()
            assert sock.getsockopt(SOL_MULTISOCK, SO_FD_MODE) == FD_BRIDGED
            probe = kernel.socket(fileno=os.dup(fd))
            with probe:
                assert (probe.family, probe.type) == (kernel.AF_UNIX, kernel.SOCK_DGRAM)
        plain = multisock.socket.socket(kernel.AF_INET, kernel.SOCK_DGRAM)
        with plain:  # the default stays the readiness eventfd
            probe_fd = os.dup(plain.fileno())
            try:
                with pytest.raises(OSError):
                    kernel.socket(fileno=probe_fd)  # (not a socket: an eventfd)
            finally:
                os.close(probe_fd)


_SCRIPT = textwrap.dedent("""
    import os, socket
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
    a.connect(b.getsockname()); b.connect(a.getsockname())
    b.send(b"ping")
    os.write(a.fileno(), b"pong")
    print(socket.socket.__module__, os.read(a.fileno(), 100), b.recv(100))
""")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_global_fd_mode_applies_to_udp(how: str, tmp_path: Path) -> None:
    script = tmp_path / "bridged_udp_app.py"
    script.write_text(_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
    env["PYTHONPATH"] = str(ROOT)
    if how == "flag":
        cmd = [sys.executable, "-m", "multisock", "run", "--isolated", "--fd-mode", "bridged",
               str(script)]
    else:
        env.update(MULTISOCK="1", MULTISOCK_ISOLATED="1", MULTISOCK_FD_MODE="bridged")
        cmd = [sys.executable, str(script)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["multisock.socket", "b'ping'", "b'pong'"]
