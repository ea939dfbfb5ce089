"""fork(): the child uses the userspace sockets it inherited, served by the parent, and a
connection closes only when both processes have closed it (as with kernel fds).
Found by CPython's test_socketserver (ForkingTCPServer, ForkingUDPServer) under compat_tests."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=23)
    h = net.add_host("forker", "10.23.0.1/24")
    with use_host(h):
        yield h
    net.close()


def child(body: object) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            body()  # type: ignore[operator]
        except BaseException:  # noqa: BLE001 - report through the exit status
            import traceback

            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    return pid


def exit_code(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_child_serves_an_inherited_tcp_connection(host: multisock.Host) -> None:
    srv = msock.socket(msock.AF_INET, msock.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = msock.create_connection(srv.getsockname(), timeout=30)
    conn, _ = srv.accept()

    def serve() -> None:
        f = conn.makefile("rb")
        line = f.readline()
        conn.sendall(b"echo:" + line)
        f.close()
        conn.shutdown(socket.SHUT_WR)
        conn.close()

    pid = child(serve)
    conn.close()  # like ForkingMixIn: the parent lets go of its copy at once
    cli.sendall(b"hello\n")
    got = b""
    while True:
        chunk = cli.recv(100)
        if not chunk:
            break
        got += chunk
    assert got == b"echo:hello\n"
    assert exit_code(pid) == 0
    cli.close()
    srv.close()


def test_child_sends_on_an_inherited_udp_socket_and_exit_releases_it(
        host: multisock.Host) -> None:
    server = msock.socket(msock.AF_INET, msock.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = msock.socket(msock.AF_INET, msock.SOCK_DGRAM)
    client.settimeout(30)
    client.bind(("127.0.0.1", 0))
    target = client.getsockname()
    pid = child(lambda: server.sendto(b"from child", target))
    assert client.recvfrom(100) == (b"from child", server.getsockname())
    assert exit_code(pid) == 0
    # the child's reference goes away with it (noticed by the parent's server thread when
    # the child's end of the channel closes): then the parent's close really closes
    core = server._sock  # type: ignore[attr-defined]
    server.close()
    deadline = time.monotonic() + 30
    while not core.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert core.closed
    client.close()


def test_an_error_served_by_the_parent_leaves_no_cycle_in_the_child(
        host: multisock.Host) -> None:
    """The child re-raises the parent's answer; a frame still naming it would be a cycle
    pinning the child's calling frames until a collection (tests/cycles.py)."""
    from tests.cycles import caller_frame_outlives_call, collector_off

    srv = msock.socket(msock.AF_INET, msock.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = msock.create_connection(srv.getsockname(), timeout=30)
    conn, _ = srv.accept()

    def body() -> None:
        with collector_off():
            # nothing sent yet: the parent answers BlockingIOError
            assert not caller_frame_outlives_call(lambda: conn.recv(10, socket.MSG_DONTWAIT))
        conn.close()

    pid = child(body)
    assert exit_code(pid) == 0
    for s in (conn, cli, srv):
        s.close()
