"""The output side of the firewall: reject in ``output`` answers the local sender as Linux's
REJECT does, and ``oif`` matches the interface a packet leaves by (output and forward)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from multisock.net.host import Host
from multisock.security.rules import parse_line

A_ADDR, B_ADDR = "10.0.0.1", "10.0.0.2"


@pytest.fixture
def pair() -> Iterator[tuple[Host, Host]]:
    with multisock.Network(seed=9) as net:
        a = net.add_host("a", f"{A_ADDR}/24")
        b = net.add_host("b", f"{B_ADDR}/24")
        net.link(a, b)
        yield a, b


def _listen(host: Host, port: int) -> Any:
    sock = host.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", port))
    sock.listen()
    return sock


def _connect_error(host: Host, addr: str, port: int) -> int:
    """0 when connected, else the errno (ETIMEDOUT for a timeout)."""
    sock = host.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(0.5)
    try:
        sock.connect((addr, port))
        return 0
    except TimeoutError:
        return errno.ETIMEDOUT
    except OSError as exc:
        return exc.errno or -1
    finally:
        sock.close()


def _rule(host: Host, chain: str, index: int) -> dict[str, Any]:
    return next(r for r in host.firewall.rules() if r["chain"] == chain and r["index"] == index)


@pytest.mark.parametrize("reject_with", ["port-unreachable", "tcp-reset", "admin-prohibited"])
def test_output_reject_makes_connect_fail_at_once(pair: tuple[Host, Host],
                                                  reject_with: str) -> None:
    """Linux: ``iptables -A OUTPUT -p tcp --dport N -j REJECT`` (either kind) makes
    connect() fail with ECONNREFUSED, not time out: the answer reaches our own SYN_SENT
    socket. (admin-prohibited: EHOSTUNREACH, tcp_v4_err's mapping of code 13.)"""
    a, b = pair
    keep = _listen(b, 7000)
    a.firewall.add_rule("output", "reject", proto="tcp", dport=7000, reject_with=reject_with)
    want = errno.EHOSTUNREACH if reject_with == "admin-prohibited" else errno.ECONNREFUSED
    assert _connect_error(a, B_ADDR, 7000) == want
    assert _rule(a, "output", 0)["packets"] >= 1
    assert a.security.counters["rejects_sent"] >= 1
    a.firewall.clear()
    assert _connect_error(a, B_ADDR, 7000) == 0
    keep.close()


def test_output_reject_is_eperm_for_udp_and_refused_after(pair: tuple[Host, Host]) -> None:
    a, b = pair
    server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("0.0.0.0", 53))
    server.setblocking(False)
    a.firewall.add("output reject udp dport 53")
    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect((B_ADDR, 53))
    with pytest.raises(PermissionError) as info:
        client.send(b"q")  # the dropped send itself, as Linux's -EPERM
    assert info.value.errno == errno.EPERM
    client.settimeout(0.5)
    with pytest.raises(ConnectionRefusedError):
        client.recv(100)  # then the port unreachable that REJECT sent us
    with pytest.raises(BlockingIOError):
        server.recv(100)


def test_oif_matches_the_leaving_interface(pair: tuple[Host, Host]) -> None:
    a, b = pair
    keep = _listen(b, 7100)
    local = _listen(a, 7100)
    a.firewall.add_rule("output", "drop", proto="tcp", dport=7100, oif="eth0")
    with pytest.raises(ValueError):
        a.firewall.add_rule("input", "drop", oif="eth0")  # nothing leaves at input
    assert _connect_error(a, B_ADDR, 7100) == errno.ETIMEDOUT  # out by eth0: dropped
    assert _connect_error(a, "127.0.0.1", 7100) == 0  # out by lo: another interface
    assert _rule(a, "output", 0)["packets"] >= 1
    keep.close()
    local.close()


def test_oif_in_forward_and_in_text() -> None:
    assert parse_line("forward drop oif eth1 udp")[3]["oif"] == "eth1"
    assert parse_line("output accept oifname lo")[3]["oif"] == "lo"
    with multisock.Network(seed=3) as net:
        a = net.add_host("a", "10.1.0.1/24")
        r = net.add_router("r", "10.1.0.254/24")
        b = net.add_host("b", "10.2.0.1/24")
        net.link(a, r)
        net.link(r, b, b_addr=None, a_addr="10.2.0.254/24")
        a.add_route("0.0.0.0/0", via="10.1.0.254")
        b.add_route("0.0.0.0/0", via="10.2.0.254")
        out_b = r.ip.interfaces[2].name  # r's link towards b
        r.firewall.add_rule("forward", "drop", proto="icmp", oif=out_b)
        with pytest.raises(TimeoutError):
            a.ping("10.2.0.1", timeout=0.2)
        r.firewall.clear()
        r.firewall.add_rule("forward", "drop", proto="icmp", oif="nonesuch")
        assert a.ping("10.2.0.1") < 1.0
