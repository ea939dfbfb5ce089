"""The same scenarios against the kernel's socket module and multisock.socket.

Each scenario is a function of a socket *module*; its outcome (the return value,
or the exception type and errno) must be identical for both. The kernel runs on
its real loopback, multisock on a fresh virtual host's loopback.
"""

from __future__ import annotations

import errno
import socket as kernel
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host

Scenario = Callable[[Any], Any]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def outcome(fn: Scenario, mod: Any) -> Any:
    try:
        return ("ok", fn(mod))
    except OSError as exc:
        return (type(exc).__name__, exc.errno)
    except (TypeError, ValueError, OverflowError) as exc:
        return (type(exc).__name__,)


def free_port(mod: Any, type_: int = kernel.SOCK_STREAM) -> int:
    with mod.socket(mod.AF_INET, type_) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------- UDP


@scenario
def udp_double_bind(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as a, mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as b:
        a.bind(("127.0.0.1", 0))
        b.bind(a.getsockname())


@scenario
def udp_nonblocking_recv(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        s.recv(10)


@scenario
def udp_timeout(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.05)
        try:
            s.recv(10)
        except TimeoutError as exc:
            return str(exc), exc.errno


@scenario
def udp_too_big(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.sendto(b"x" * 65508, ("127.0.0.1", 9))


@scenario
def udp_max_size_ok(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as rx, mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(mod.SOL_SOCKET, mod.SO_RCVBUF, 1 << 20)
        tx.sendto(b"y" * 65507, rx.getsockname())
        rx.settimeout(2)
        return len(rx.recv(70000))


@scenario
def udp_sockname_before_bind(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        return s.getsockname()


@scenario
def udp6_sockname_before_bind(mod: Any) -> Any:
    with mod.socket(mod.AF_INET6, mod.SOCK_DGRAM) as s:
        return s.getsockname()


@scenario
def udp_peername_unconnected(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.getpeername()


@scenario
def udp_connected_refused(mod: Any) -> Any:
    port = free_port(mod, mod.SOCK_DGRAM)
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.send(b"ping")
        s.settimeout(2)
        s.recv(10)


@scenario
def udp_recvfrom_source(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as rx, mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        tx.bind(("127.0.0.1", 0))
        tx.sendto(b"abc", rx.getsockname())
        rx.settimeout(2)
        data, source = rx.recvfrom(10)
        return data, source == tx.getsockname()


@scenario
def udp_peek_then_read(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as rx, mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        tx.sendto(b"first", rx.getsockname())
        tx.sendto(b"second", rx.getsockname())
        rx.settimeout(2)
        return rx.recv(10, mod.MSG_PEEK), rx.recv(3), rx.recv(10)


@scenario
def udp_recvmsg_trunc_flag(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as rx, mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        tx.sendto(b"0123456789", rx.getsockname())
        rx.settimeout(2)
        data, anc, flags, _addr = rx.recvmsg(4)
        return data, anc, flags & mod.MSG_TRUNC


@scenario
def bind_port_out_of_range(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 70000))


@scenario
def bind_not_a_tuple(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.bind("127.0.0.1")


@scenario
def bind_wrong_arity(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 1, 2))


@scenario
def bind_foreign_address(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.bind(("192.0.2.55", 0))


@scenario
def settimeout_negative(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.settimeout(-1)


@scenario
def settimeout_string(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.settimeout("1")


@scenario
def timeout_roundtrip(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        out = [s.gettimeout(), s.getblocking()]
        s.settimeout(2.5)
        out += [s.gettimeout(), s.getblocking(), s.timeout]
        s.setblocking(False)
        out += [s.gettimeout(), s.getblocking()]
        return out


@scenario
def recv_after_close(mod: Any) -> Any:
    s = mod.socket(mod.AF_INET, mod.SOCK_DGRAM)
    s.close()
    return s.fileno(), outcome(lambda m: s.recv(1), mod), outcome(lambda m: s.bind(("", 0)), mod)


@scenario
def recv_into_too_small(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.recv_into(bytearray(4), 10)


@scenario
def udp_shutdown_unconnected(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.shutdown(mod.SHUT_RDWR)


@scenario
def udp_listen(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.listen()


@scenario
def udp_send_unconnected(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.send(b"x")


@scenario
def sockopt_basics(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        out = [s.getsockopt(mod.SOL_SOCKET, mod.SO_TYPE), s.getsockopt(mod.SOL_SOCKET, mod.SO_ERROR),
               s.getsockopt(mod.SOL_SOCKET, mod.SO_REUSEADDR)]
        s.setsockopt(mod.SOL_SOCKET, mod.SO_REUSEADDR, 1)
        s.setsockopt(mod.SOL_SOCKET, mod.SO_RCVBUF, 10000)
        s.setsockopt(mod.IPPROTO_IP, mod.IP_TTL, 7)
        out += [s.getsockopt(mod.SOL_SOCKET, mod.SO_REUSEADDR),
                s.getsockopt(mod.SOL_SOCKET, mod.SO_RCVBUF),
                s.getsockopt(mod.IPPROTO_IP, mod.IP_TTL),
                len(s.getsockopt(mod.SOL_SOCKET, mod.SO_TYPE, 4))]
        return out


@scenario
def sockopt_unknown(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.getsockopt(mod.SOL_SOCKET, 9999)


@scenario
def ip_ttl_out_of_range(mod: Any) -> Any:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.setsockopt(mod.IPPROTO_IP, mod.IP_TTL, 256)


@scenario
def type_and_family_attributes(mod: Any) -> Any:
    with mod.socket(mod.AF_INET6, mod.SOCK_DGRAM) as s:
        return repr(s.family), repr(s.type), s.proto


@scenario
def unsupported_proto(mod: Any) -> Any:
    mod.socket(mod.AF_INET, mod.SOCK_STREAM, mod.IPPROTO_UDP)


@scenario
def v6_socket_receives_v4(mod: Any) -> Any:
    with mod.socket(mod.AF_INET6, mod.SOCK_DGRAM) as rx, mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as tx:
        rx.bind(("::", 0))
        tx.sendto(b"mapped", ("127.0.0.1", rx.getsockname()[1]))
        rx.settimeout(2)
        data, source = rx.recvfrom(10)
        return data, source[0]


# --------------------------------------------------------------------- TCP


@scenario
def tcp_connect_refused(mod: Any) -> Any:
    port = free_port(mod)
    with mod.socket(mod.AF_INET, mod.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(("127.0.0.1", port))


@scenario
def tcp_connect_ex_refused(mod: Any) -> Any:
    port = free_port(mod)
    with mod.socket(mod.AF_INET, mod.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port))


@scenario
def tcp_listen_port_in_use(mod: Any) -> Any:
    with mod.socket() as a, mod.socket() as b:
        a.bind(("127.0.0.1", 0))
        a.listen()
        b.bind(a.getsockname())


def _connected(mod: Any) -> tuple[Any, Any, Any]:
    listener = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = mod.create_connection(listener.getsockname(), timeout=2)
    server, _ = listener.accept()
    server.settimeout(2)
    return listener, client, server


@scenario
def tcp_echo_and_names(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.sendall(b"hello")
        got = server.recv(100)
        server.sendall(got.upper())
        back = client.recv(100)
        return (got, back, client.getpeername() == listener.getsockname(),
                server.getpeername() == client.getsockname(),
                client.getsockopt(mod.SOL_SOCKET, mod.SO_TYPE),
                listener.getsockopt(mod.SOL_SOCKET, mod.SO_ACCEPTCONN),
                client.getsockopt(mod.SOL_SOCKET, mod.SO_ACCEPTCONN))


@scenario
def tcp_eof_after_peer_close(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.sendall(b"bye")
        client.close()
        return server.recv(10), server.recv(10)


@scenario
def tcp_half_close(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.shutdown(mod.SHUT_WR)
        eof = server.recv(10)
        server.sendall(b"still open")
        return eof, client.recv(100)


@scenario
def tcp_recv_timeout(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.settimeout(0.05)
        client.recv(10)


@scenario
def tcp_nonblocking_recv(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.setblocking(False)
        client.recv(10)


@scenario
def tcp_nonblocking_accept(mod: Any) -> Any:
    with mod.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        listener.accept()


@scenario
def tcp_nonblocking_connect(mod: Any) -> Any:
    with mod.socket() as listener, mod.socket() as client:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client.setblocking(False)
        first = outcome(lambda m: client.connect(listener.getsockname()), mod)
        deadline = time.monotonic() + 2
        import select

        while time.monotonic() < deadline:
            # writability through the SO_ERROR path, without the patched select
            if client.getsockopt(mod.SOL_SOCKET, mod.SO_ERROR) == 0:
                try:
                    client.getpeername()
                    break
                except OSError:
                    pass
            select.select([], [], [], 0.01)
        return first, client.getpeername() == listener.getsockname()


@scenario
def tcp_rst_on_close_with_unread_data(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.sendall(b"unread")
        time.sleep(0.05)
        server.close()
        client.settimeout(2)
        client.recv(10)


@scenario
def tcp_peek_and_waitall(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.sendall(b"abcdef")
        peeked = server.recv(3, mod.MSG_PEEK)
        client.sendall(b"ghij")
        return peeked, server.recv(10, mod.MSG_WAITALL)


@scenario
def tcp_sendto_connected(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.sendto(b"x", ("127.0.0.1", 1))


@scenario
def tcp_options(mod: Any) -> Any:
    with mod.socket() as s:
        out = [s.getsockopt(mod.IPPROTO_TCP, mod.TCP_NODELAY)]
        s.setsockopt(mod.IPPROTO_TCP, mod.TCP_NODELAY, 1)
        s.setsockopt(mod.SOL_SOCKET, mod.SO_KEEPALIVE, 1)
        s.setsockopt(mod.IPPROTO_TCP, mod.TCP_KEEPIDLE, 30)
        out += [s.getsockopt(mod.IPPROTO_TCP, mod.TCP_NODELAY) != 0,
                s.getsockopt(mod.SOL_SOCKET, mod.SO_KEEPALIVE) != 0,
                s.getsockopt(mod.IPPROTO_TCP, mod.TCP_KEEPIDLE)]
        return out


@scenario
def tcp_ip_options(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        client.setsockopt(mod.IPPROTO_IP, mod.IP_TTL, 9)
        client.setsockopt(mod.IPPROTO_IP, mod.IP_TOS, 0x10)
        client.sendall(b"ttl")
        return (client.getsockopt(mod.IPPROTO_IP, mod.IP_TTL),
                client.getsockopt(mod.IPPROTO_IP, mod.IP_TOS), server.recv(10))


@scenario
def tcp_peername_unconnected(mod: Any) -> Any:
    with mod.socket() as s:
        s.getpeername()


@scenario
def tcp_recv_never_connected(mod: Any) -> Any:
    with mod.socket() as s:
        s.settimeout(5)  # Linux answers ENOTCONN at once: a hang would show as a timeout
        s.recv(1)


@scenario
def tcp_recv_never_connected_nonblocking(mod: Any) -> Any:
    with mod.socket() as s:
        s.setblocking(False)
        s.recv(1)


@scenario
def tcp_recv_on_listener(mod: Any) -> Any:
    with mod.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.settimeout(0.2)  # CPython polls for POLLIN first: a listener waits, then times out
        s.recv(1)


@scenario
def tcp_recv_on_listener_blocking(mod: Any) -> Any:
    with mod.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.recv(1)


@scenario
def tcp_recv_on_listener_nonblocking(mod: Any) -> Any:
    with mod.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.setblocking(False)
        s.recv(1)


@scenario
def tcp_send_never_connected(mod: Any) -> Any:
    out = []
    for op in ("send", "sendto", "sendall", "nonblocking", "timeout"):
        with mod.socket() as s:
            if op == "nonblocking":
                s.setblocking(False)
            elif op == "timeout":
                s.settimeout(5)  # CPython polls POLLOUT first: POLLHUP lets it go on to EPIPE
            try:
                if op == "sendto":
                    s.sendto(b"x", ("127.0.0.1", 9))
                elif op == "sendall":
                    s.sendall(b"x")
                else:
                    s.send(b"x")
            except OSError as exc:
                out.append((op, type(exc).__name__, exc.errno))
    return out


@scenario
def tcp_send_on_listener(mod: Any) -> Any:
    out = []
    for timeout in (None, 0.0, 0.2):
        with mod.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            s.settimeout(timeout)
            try:
                s.send(b"x")  # with a timeout CPython waits for POLLOUT, which never comes
            except OSError as exc:
                out.append((timeout, type(exc).__name__, exc.errno))
    return out


@scenario
def tcp_makefile_lines(mod: Any) -> Any:
    listener, client, server = _connected(mod)
    with listener, client, server:
        writer = client.makefile("wb")
        writer.write(b"line one\nline two\n")
        writer.flush()
        writer.close()
        reader = server.makefile("rb")
        lines = [reader.readline(), reader.readline()]
        reader.close()
        return lines


# ------------------------------------------------------------------ runner


@pytest.fixture(scope="module")
def virtual_host() -> Iterator[Any]:
    net = multisock.Network(seed=11)
    host = net.add_host("diff", "10.5.0.1/24")
    yield host
    net.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_outcome_as_kernel(name: str, virtual_host: Any) -> None:
    fn = SCENARIOS[name]
    expected = outcome(fn, kernel)
    with use_host(virtual_host):
        got = outcome(fn, msock)
    assert got == expected, f"{name}: kernel {expected!r}, multisock {got!r}"


def test_scenarios_exercise_errors() -> None:
    """Guard against a table of scenarios that only ever succeed."""
    outcomes = [outcome(fn, kernel)[0] for fn in SCENARIOS.values()]
    assert outcomes.count("ok") < len(outcomes) - 15
    assert errno.EADDRINUSE in [outcome(udp_double_bind, kernel)[1]]
