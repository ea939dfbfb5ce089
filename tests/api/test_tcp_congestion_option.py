"""TCP_CONGESTION (issue #15, "Also"): an algorithm the stack does not have is refused at
``setsockopt`` with ENOENT, as Linux refuses a name it has no module for; before, any name
was accepted and the handshake then failed inside the stack (connect() timed out)."""

from __future__ import annotations

import errno
import socket

import pytest

import multisock
from multisock.net.network import Network
from multisock.stack.tcp.congestion import AVAILABLE

TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)


@pytest.fixture
def net() -> Network:
    n = multisock.Network(seed=5)
    yield n
    n.close()


def _outcome(sock: object, value: object) -> str | tuple[str, bytes]:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, value)  # type: ignore[attr-defined]
    except OSError as exc:
        return errno.errorcode[exc.errno]
    got = sock.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16)  # type: ignore[attr-defined]
    return "ok", got.rstrip(b"\0")


def _kernel_has(name: str) -> bool:
    try:
        with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
            return name in f.read().split()
    except OSError:
        return False


# names neither we nor a stock kernel have, and malformed values: the kernel's answers
@pytest.mark.parametrize("value", [b"nosuchcc", b"CUBIC", b"", b"\xff\xfe", b"x" * 20, 1,
                                   b"cubic\0junk", b"reno", b"newreno"])
def test_setsockopt_answers_as_the_kernel(net: Network, value: object) -> None:
    if isinstance(value, bytes) and value.split(b"\0")[0] in (b"cubic", b"reno") \
            and not _kernel_has(value.split(b"\0")[0].decode()):
        pytest.skip(f"the kernel here has no {value!r} congestion control to compare with")
    host = net.add_host("h", "10.0.0.1/24")
    ours = host.socket()
    kernel = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert _outcome(ours, value) == _outcome(kernel, value)
    finally:
        ours.close()
        kernel.close()


def test_an_algorithm_we_do_not_have_is_enoent_even_where_the_kernel_has_it(net: Network) -> None:
    """bbr: Linux with the module accepts it, we have no BBR: ENOENT (a kernel without
    the module), never a connect() that times out."""
    assert "bbr" not in AVAILABLE
    host = net.add_host("h", "10.0.0.1/24")
    s = host.socket()
    with pytest.raises(FileNotFoundError) as info:
        s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, b"bbr")
    assert info.value.errno == errno.ENOENT
    assert s.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).rstrip(b"\0") == b"cubic"
    s.close()


def test_str_value_is_a_type_error_as_in_the_kernel_socket(net: Network) -> None:
    host = net.add_host("h", "10.0.0.1/24")
    s = host.socket()
    kernel = socket.socket()
    with pytest.raises(TypeError) as ours:
        s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, "cubic")
    with pytest.raises(TypeError) as theirs:
        kernel.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, "cubic")  # type: ignore[call-overload]
    assert str(ours.value) == str(theirs.value)
    s.close()
    kernel.close()


@pytest.mark.parametrize("name", sorted(AVAILABLE))
def test_every_algorithm_we_have_connects(net: Network, name: str) -> None:
    a = net.add_host("a", "10.0.0.1/24")
    b = net.add_host("b", "10.0.0.2/24")
    net.link(a, b)
    srv = b.socket()
    srv.bind(("10.0.0.2", 80))
    srv.listen()
    cli = a.socket()
    cli.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, name.encode())
    cli.settimeout(10)
    cli.connect(("10.0.0.2", 80))
    conn, _ = srv.accept()
    cli.sendall(b"hi")
    conn.settimeout(10)
    assert conn.recv(10) == b"hi"
    for s in (cli, conn, srv):
        s.close()


def test_newreno_is_not_a_linux_name_reno_is_our_newreno() -> None:
    """Linux has no "newreno" (its "reno" does RFC 6582's recovery, as ours does): the
    stack's own table refuses it too, so a TcpConfig or scenario cannot name it either."""
    from multisock.stack.tcp.congestion import make_congestion_control

    assert "newreno" not in AVAILABLE
    with pytest.raises(ValueError):
        make_congestion_control("newreno", 1460, 0.0)
    assert make_congestion_control("reno", 1460, 0.0).name == "reno"
