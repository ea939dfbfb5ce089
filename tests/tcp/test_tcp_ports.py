"""bind()/listen()/connect() port rules like Linux, and randomised ephemeral ports."""

from __future__ import annotations

import errno
import socket

import pytest
from tcpnet import A, B
from tcpscript import Script

from multisock.stack.tcp import TcpState

ANY4 = bytes(4)
ANY6 = bytes(16)


def _bind(s: Script, addr: bytes, port: int, family: int = socket.AF_INET, **opts: object):  # type: ignore[no-untyped-def]
    sock = s.stack.socket(family)
    for k, v in opts.items():
        setattr(sock, k, v)
    sock.bind(addr, port)
    return sock


def test_same_port_twice_is_eaddrinuse() -> None:
    s = Script()
    _bind(s, A, 80)
    with pytest.raises(OSError) as info:
        _bind(s, A, 80)
    assert info.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError):
        _bind(s, ANY4, 80)  # the wildcard overlaps the specific address


def test_reuseaddr_on_both_allows_binding_but_not_two_listeners() -> None:
    s = Script()
    a = _bind(s, A, 80, reuseaddr=True)
    b = _bind(s, A, 80, reuseaddr=True)
    a.listen(5, s.now)
    with pytest.raises(OSError) as info:
        b.listen(5, s.now)
    assert info.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError):
        _bind(s, A, 80, reuseaddr=True)  # a listener holds it now


def test_reuseaddr_rebinds_over_time_wait() -> None:
    s = Script()
    sock = s.passive_open()
    sock.close(s.now)
    s.inject("F. 1:1(0) ack 2 win 65535")
    assert sock.state is TcpState.TIME_WAIT
    assert s.listener is not None
    s.listener.close(s.now)
    with pytest.raises(OSError):
        _bind(s, A, 8080)
    again = _bind(s, A, 8080, reuseaddr=True)
    again.listen(5, s.now)


def test_v6_wildcard_conflicts_with_v4_unless_v6only() -> None:
    s = Script()
    _bind(s, ANY4, 81)
    with pytest.raises(OSError):
        _bind(s, ANY6, 81, socket.AF_INET6)
    _bind(s, ANY6, 81, socket.AF_INET6, v6only=True)


def test_nonlocal_address_is_eaddrnotavail() -> None:
    s = Script()
    with pytest.raises(OSError) as info:
        _bind(s, B, 80)
    assert info.value.errno == errno.EADDRNOTAVAIL


def test_bind_twice_is_einval() -> None:
    s = Script()
    sock = _bind(s, A, 80)
    with pytest.raises(OSError) as info:
        sock.bind(A, 81)
    assert info.value.errno == errno.EINVAL


def test_ephemeral_ports_are_random_and_in_range() -> None:
    s = Script()
    ports = [_bind(s, A, 0).local[1] for _ in range(50)]
    assert all(32768 <= p <= 60999 for p in ports)
    assert len(set(ports)) == 50
    assert ports != sorted(ports)


def test_connect_errors() -> None:
    s = Script()
    sock = s.stack.socket(socket.AF_INET)
    with pytest.raises(OSError) as info:
        sock.connect(bytes([255, 1, 1, 1]), 80, s.now)
    assert info.value.errno == errno.ENETUNREACH
    sock = s.connect()
    with pytest.raises(OSError) as info:
        sock.connect(B, 8080, s.now)
    assert info.value.errno == errno.EALREADY


def test_unconnected_socket_errors() -> None:
    s = Script()
    sock = s.stack.socket(socket.AF_INET)
    with pytest.raises(OSError) as info:
        sock.send(b"x", s.now)
    assert info.value.errno == errno.EPIPE  # Linux: sk_stream_wait_connect says EPIPE
    with pytest.raises(OSError) as info:
        sock.recv_into(memoryview(bytearray(1)), s.now)
    assert info.value.errno == errno.ENOTCONN
    with pytest.raises(OSError) as info:
        sock.shutdown(socket.SHUT_WR, s.now)
    assert info.value.errno == errno.ENOTCONN
    with pytest.raises(OSError):
        s.stack.socket(socket.AF_UNIX)


def test_connect_on_connected_socket_is_eisconn() -> None:
    s = Script()
    sock = s.active_open()
    with pytest.raises(OSError) as info:
        sock.connect(B, 8080, s.now)
    assert info.value.errno == errno.EISCONN
