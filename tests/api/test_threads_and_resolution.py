"""Threads around one socket; getaddrinfo compared with the kernel's for numeric and local names."""

from __future__ import annotations

import errno
import socket as kernel
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=13)
    h = net.add_host("threads", "10.6.0.1/24")
    yield h
    net.close()


def test_close_from_another_thread_wakes_blocked_recv(host: multisock.Host) -> None:
    with use_host(host):
        for kind in (msock.SOCK_DGRAM, msock.SOCK_STREAM):
            if kind == msock.SOCK_DGRAM:
                sock = msock.socket(msock.AF_INET, kind)
                sock.bind(("127.0.0.1", 0))
                blocked = sock
                others: list[Any] = []
            else:
                listener = msock.socket()
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                client = msock.create_connection(listener.getsockname())
                blocked, _ = listener.accept()
                others = [listener, client]
            outcome: list[BaseException] = []

            def reader(s: Any = blocked, outcome: list[BaseException] = outcome) -> None:
                try:
                    s.recv(10)
                except OSError as exc:
                    outcome.append(exc)

            t = threading.Thread(target=reader)
            t.start()
            time.sleep(0.1)
            blocked.close()
            t.join(5)
            assert not t.is_alive(), "a blocked recv must wake when the socket is closed"
            assert isinstance(outcome[0], OSError) and outcome[0].errno == errno.EBADF
            for s in others:
                s.close()


def test_one_thread_receives_while_another_sends(host: multisock.Host) -> None:
    with use_host(host):
        a, b = msock.socketpair(msock.AF_INET)
        got = bytearray()

        def reader() -> None:
            while len(got) < 1_000_000:
                got.extend(b.recv(65536))

        t = threading.Thread(target=reader)
        t.start()
        for _ in range(100):
            a.sendall(b"z" * 10_000)
        t.join(10)
        assert bytes(got) == b"z" * 1_000_000
        a.close()
        b.close()


def gai(mod: Any, *args: Any) -> Any:
    try:
        return sorted(mod.getaddrinfo(*args))
    except OSError as exc:
        return (type(exc).__name__, exc.errno)


@pytest.mark.parametrize("args", [
    ("127.0.0.1", 80),
    ("127.0.0.1", 80, 0, kernel.SOCK_STREAM),
    ("::1", "80", kernel.AF_INET6, kernel.SOCK_DGRAM),
    (None, 80, 0, kernel.SOCK_STREAM, 0, kernel.AI_PASSIVE),
    (None, 80, kernel.AF_INET, kernel.SOCK_STREAM),
    ("127.0.0.1", "http", 0, kernel.SOCK_STREAM),
    ("127.0.0.1", "no-such-service", 0, kernel.SOCK_STREAM),
    ("127.0.0.1", "http", 0, kernel.SOCK_STREAM, 0, kernel.AI_NUMERICSERV),
    ("not-numeric.invalid", 80, 0, 0, 0, kernel.AI_NUMERICHOST),
    ("127.0.0.1", 80, kernel.AF_INET6),
    ("127.0.0.1", 80, 0, kernel.SOCK_STREAM, 0, kernel.AI_CANONNAME),
    (None, None),
])
def test_getaddrinfo_like_the_kernel(host: multisock.Host, args: tuple[Any, ...]) -> None:
    expected = gai(kernel, *args)
    with use_host(host):
        assert gai(msock, *args) == expected


def test_getaddrinfo_type_errors_and_names(host: multisock.Host) -> None:
    with pytest.raises(TypeError):
        msock.getaddrinfo(80, 80)
    with use_host(host):
        assert msock.gethostname() == "threads"
        assert msock.gethostbyname("threads") == "10.6.0.1"
        assert msock.gethostbyaddr("10.6.0.1")[0] == "threads"
        assert [n for _, n in msock.if_nameindex()] == ["lo", "eth0"]
        assert msock.if_indextoname(msock.if_nametoindex("eth0")) == "eth0"
        with pytest.raises(OSError):
            msock.if_nametoindex("nope0")
        assert msock.getnameinfo(("127.0.0.1", 80), msock.NI_NUMERICHOST | msock.NI_NUMERICSERV) == ("127.0.0.1", "80")
