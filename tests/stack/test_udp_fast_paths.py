"""UDP's fast paths (stack/ip.py udp_output and the input fast path, stack/udp.py, api/dgram.py):
the usual datagram skips the general code, and what goes on the wire, what the receiver gets
and the errors are what the general paths give."""

from __future__ import annotations

import errno
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import pytest

import multisock
from multisock.net.host import Host
from multisock.net.network import Network
from multisock.stack.ip import IPStack

A_ADDR, B_ADDR = "10.0.0.1", "10.0.0.2"
A_BYTES, B_BYTES = socket.inet_aton(A_ADDR), socket.inet_aton(B_ADDR)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux's values (not in every Python's socket)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


@pytest.fixture
def net() -> Iterator[Network]:
    with multisock.Network(seed=23) as network:
        yield network


def _pair(net: Network) -> tuple[Host, Host, list[bytes]]:
    """Hosts a and b on one ideal (trusted) link; the list gets every packet a sends on it."""
    a = net.add_host("a", f"{A_ADDR}/24")
    b = net.add_host("b", f"{B_ADDR}/24")
    link = net.link(a, b)
    wire: list[bytes] = []
    link.directions[0].taps.append(wire.append)
    return a, b, wire


@contextmanager
def _calls_in_ip() -> Iterator[Counter[str]]:
    """How often each IPStack method ran (a profile hook: the pure build's frames)."""
    calls: Counter[str] = Counter()
    ip_file = sys.modules[IPStack.__module__].__file__

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename == ip_file:
            calls[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)


@pytest.mark.skipif(not hasattr(IPStack.input, "__code__"),
                    reason="a compiled IPStack has no Python frames to count")
def test_unicast_udp_takes_the_fast_paths(net: Network) -> None:
    a, b, _ = _pair(net)
    rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((B_ADDR, 5000))
    tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect((B_ADDR, 5000))
    with _calls_in_ip() as calls:
        for i in range(5):
            tx.send(b"%d" % i)
            assert rx.recv(100) == b"%d" % i
    assert calls["udp_output"] == 5 and calls["_udp_input_fast"] == 5
    # neither general path ran: no output()/_send() on the way out, no _input4 on the way in
    assert calls["output"] == 0 and calls["_send"] == 0 and calls["_input4"] == 0


def _general_packet(ip: IPStack, packet: bytes) -> bytes:
    """What output() (the general path) sends for the UDP datagram inside ``packet``."""
    sent: list[bytes] = []
    iface = ip.interfaces[1]
    original = iface.transmit
    iface.transmit = lambda p, hop, now: sent.append(bytes(p))  # type: ignore[method-assign]
    try:
        ip.output(packet[12:16], packet[16:20], 17, packet[20:28], packet[28:], ttl=packet[8],
                  tos=packet[1], csum_offset=6)
    finally:
        iface.transmit = original  # type: ignore[method-assign]
    assert len(sent) == 1
    return sent[0]


@pytest.mark.parametrize("options", [
    {},
    {"ttl": 7},
    {"tos": 0x20},
    {"ttl": 200, "tos": 0x10, "bind": False},
])
def test_fast_output_sends_what_output_sends(net: Network, options: dict[str, Any]) -> None:
    a, b, wire = _pair(net)
    rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((B_ADDR, 5001))
    tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if options.get("bind", True):
        tx.bind((A_ADDR, 4001))
    if "ttl" in options:
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, options["ttl"])
    if "tos" in options:
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, options["tos"])
    payload = bytes(range(256)) * 4
    tx.sendto(payload, (B_ADDR, 5001))
    assert rx.recvfrom(2000) == (payload, (A_ADDR, tx.getsockname()[1]))
    (packet,) = wire
    assert packet[8] == options.get("ttl", 64) and packet[1] == options.get("tos", 0)
    assert packet[12:16] == A_BYTES and packet[16:20] == B_BYTES
    with a.driver.lock:
        general = _general_packet(a.ip, packet)
    # the same bytes but the IP identification, which counts datagrams
    assert general[:4] + general[6:] == packet[:4] + packet[6:]


def test_recvfrom_reports_each_sender(net: Network) -> None:
    """recvfrom's address is formatted once per sender: alternating senders each get theirs."""
    a, b, _ = _pair(net)
    rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("0.0.0.0", 5002))
    senders = []
    for port in (4100, 4101):
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.bind((A_ADDR, port))
        senders.append(tx)
    local = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    local.bind((B_ADDR, 4100))  # the same port from another address
    for tx in (senders[0], senders[1], local, senders[0], senders[0], local):
        tx.sendto(b"hi", (B_ADDR, 5002))
        assert rx.recvfrom(10) == (b"hi", tx.getsockname())


def test_fast_input_ancillary_data_and_port_unreachable(net: Network) -> None:
    """The input fast path hands UDP the IP header's TTL and TOS and the arrival interface,
    and answers a closed port with port unreachable (ECONNREFUSED on a connected socket)."""
    a, b, _ = _pair(net)
    rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((B_ADDR, 5003))
    for option in (IP_RECVTTL, socket.IP_RECVTOS, IP_PKTINFO):
        rx.setsockopt(socket.IPPROTO_IP, option, 1)
    tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 9)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28)
    tx.connect((B_ADDR, 5003))
    tx.send(b"meta")
    data, cmsgs, _, _ = rx.recvmsg(100, 1024)
    assert data == b"meta"
    got = {(level, kind): value for level, kind, value in cmsgs}
    assert got[(socket.IPPROTO_IP, socket.IP_TTL)][0] == 9
    assert got[(socket.IPPROTO_IP, socket.IP_TOS)][0] == 0x28
    pktinfo = got[(socket.IPPROTO_IP, IP_PKTINFO)]
    assert pktinfo[8:12] == B_BYTES  # ipi_addr: the datagram's destination
    assert int.from_bytes(pktinfo[:4], sys.byteorder) == b.ip.interfaces[1].index
    rx.close()
    tx.send(b"nobody")  # answered with port unreachable
    with pytest.raises(ConnectionRefusedError) as info:
        tx.send(b"again")
    assert info.value.errno == errno.ECONNREFUSED
    assert b.ip.udp.counters["no_port"] == 1


def test_fast_input_drops_on_a_full_receive_buffer(net: Network) -> None:
    """SO_RCVBUF bounds the queue on the fast path too: the rest is dropped and counted."""
    a, b, _ = _pair(net)
    rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((B_ADDR, 5004))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # doubled: 8192, as Linux
    rx.setblocking(False)
    tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect((B_ADDR, 5004))
    for _ in range(20):
        tx.send(b"x" * 1024)
    got = 0
    with pytest.raises(BlockingIOError):
        while True:
            rx.recv(2000)
            got += 1
    assert 1 <= got < 20
    assert b.ip.udp.counters["rcvbuf_errors"] == 20 - got


def test_recv_of_a_queued_datagram_still_reports_an_error_first(net: Network) -> None:
    """A pending error (ICMP) is reported before the datagram already queued, as before."""
    a, b, _ = _pair(net)
    rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((B_ADDR, 5005))
    tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind((A_ADDR, 5006))
    tx.connect((B_ADDR, 5005))
    rx.sendto(b"first", (A_ADDR, 5006))
    tx.send(b"to nobody?")  # rx is there: no error
    rx.close()
    tx.send(b"to nobody")  # port unreachable: the error is pending with a datagram queued
    tx.setblocking(False)
    with pytest.raises(ConnectionRefusedError):
        tx.recv(100)
    assert tx.recv(100) == b"first"
    with pytest.raises(BlockingIOError):
        tx.recv(100)
