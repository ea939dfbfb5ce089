"""connect() from an explicitly bound (SO_REUSEADDR) port to a 4-tuple that is already taken,
on multisock and on the kernel side by side (Linux's __inet_check_established).

* Taken by a live connection: EADDRNOTAVAIL, and the live connection is untouched.
* Taken by a TIME-WAIT left by our own earlier connection (timestamps on, as on loopback):
  the new connection takes it over at once and works.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import multisock
import multisock.stack.tcp

Factory = Callable[[], Any]


@pytest.fixture(params=["kernel", "multisock"])
def side(request: pytest.FixtureRequest) -> Iterator[tuple[Factory, str]]:
    if request.param == "kernel":
        yield (lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)), "127.0.0.1"
        return
    net = multisock.Network(seed=41)
    client_host = net.add_host("c", "10.9.0.1/24")
    server_host = net.add_host("s", "10.9.0.2/24")
    net.link(client_host, server_host)
    made: list[Any] = []

    def new() -> Any:
        # one factory for both ends: the listener binds the server's address explicitly
        sock = (server_host if not made else client_host).socket(
            socket.AF_INET, socket.SOCK_STREAM)
        made.append(sock)
        return sock

    yield new, "10.9.0.2"
    net.close()


def _listener(new: Factory, address: str) -> Any:
    listener = new()
    listener.bind((address, 0))
    listener.listen(8)
    return listener


def _bound_client(new: Factory, port: int) -> Any:
    sock = new()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", port))
    sock.settimeout(5)
    return sock


def _connected_from_a_bound_port(new: Factory, address: str) -> tuple[Any, ...]:
    """listener, its address, a client bound with SO_REUSEADDR and connected, its port,
    and the accepted server side."""
    listener = _listener(new, address)
    target = (address, listener.getsockname()[1])
    first = _bound_client(new, 0)
    first.connect(target)
    server, _ = listener.accept()
    return listener, target, first, first.getsockname()[1], server


def test_a_live_four_tuple_is_not_taken_twice(side: tuple[Factory, str]) -> None:
    new, address = side
    listener, target, first, port, server = _connected_from_a_bound_port(new, address)
    second = _bound_client(new, port)
    with pytest.raises(OSError) as info:
        second.connect(target)
    assert info.value.errno == errno.EADDRNOTAVAIL
    first.sendall(b"still mine")  # the live connection is untouched
    assert server.recv(100) == b"still mine"
    for sock in (first, second, server, listener):
        sock.close()


def test_a_time_wait_of_ours_is_taken_over(side: tuple[Factory, str]) -> None:
    new, address = side
    listener, target, first, port, server = _connected_from_a_bound_port(new, address)
    first.close()  # the client closes first: the client's side waits in TIME-WAIT
    assert server.recv(10) == b""
    server.close()
    second = _bound_client(new, port)
    second.connect(target)
    assert second.getsockname()[1] == port
    again, _ = listener.accept()
    second.sendall(b"new connection")
    assert again.recv(100) == b"new connection"
    for sock in (second, again, listener):
        sock.close()


def _pair_of_hosts(timestamps: bool = True) -> tuple[Any, Any, Any]:
    net = multisock.Network(seed=43)
    client_host = net.add_host("c", "10.9.0.1/24")
    server_host = net.add_host("s", "10.9.0.2/24")
    net.link(client_host, server_host)
    for host in (client_host, server_host):
        host.ip.tcp.config.timestamps = timestamps
    return net, client_host, server_host


def _time_wait_on_a_bound_port(client_host: Any, server_host: Any) -> tuple[Any, int]:
    listener = server_host.socket()
    listener.bind(("10.9.0.2", 80))
    listener.listen(8)
    first = client_host.socket()
    first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    first.bind(("", 0))
    first.connect(("10.9.0.2", 80))
    port = first.getsockname()[1]
    server, _ = listener.accept()
    first.close()
    server.close()
    return listener, port


def test_the_taken_over_record_leaves_the_port_and_connection_tables() -> None:
    net, client_host, server_host = _pair_of_hosts()
    listener, port = _time_wait_on_a_bound_port(client_host, server_host)
    tcp = client_host.ip.tcp
    second = client_host.socket()
    second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    second.bind(("", port))
    second.connect(("10.9.0.2", 80))
    assert tcp.counters["time_wait_reused"] == 1
    holders = tcp.ports.by_port[port]
    assert len(holders) == 1 and holders[0].state is multisock.stack.tcp.TcpState.ESTABLISHED
    second.close()
    listener.close()
    net.close()


def test_without_timestamps_a_time_wait_blocks_the_bound_connect() -> None:
    """Linux: no timestamps on the old connection, no way to tell its duplicates apart."""
    net, client_host, server_host = _pair_of_hosts(timestamps=False)
    listener, port = _time_wait_on_a_bound_port(client_host, server_host)
    second = client_host.socket()
    second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    second.bind(("", port))
    with pytest.raises(OSError) as info:
        second.connect(("10.9.0.2", 80))
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert second.getsockname() == ("0.0.0.0", port)  # the bind is as it was
    assert client_host.ip.tcp.counters["time_wait_reused"] == 0
    second.close()
    listener.close()
    net.close()
