"""IPStack's hook points (multisock/stack/hooks.py): each sees the packets it should, can drop
them (counted), PRE_ROUTING can rewrite them (NAT), and with no hook the fast paths stay."""

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
from multisock.stack import hooks as H
from multisock.stack.ip import IPStack

A_ADDR, B_ADDR = "10.0.0.1", "10.0.0.2"
A_BYTES, B_BYTES = socket.inet_aton(A_ADDR), socket.inet_aton(B_ADDR)


@pytest.fixture
def pair() -> Iterator[tuple[Host, Host]]:
    with multisock.Network(seed=17) as net:
        a = net.add_host("a", f"{A_ADDR}/24")
        b = net.add_host("b", f"{B_ADDR}/24")
        net.link(a, b)
        yield a, b


def _udp_server(host: Host, port: int) -> Any:
    server = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("0.0.0.0", port))
    server.setblocking(False)
    return server


def test_no_hook_means_no_hooks_object(pair: tuple[Host, Host]) -> None:
    a, _ = pair
    assert a.ip.hooks is None
    hook = _recorder([])
    a.ip.add_hook(H.INPUT, hook)
    assert a.ip.hooks is not None
    a.ip.remove_hook(H.INPUT, hook)
    assert a.ip.hooks is None  # the fast paths again
    with pytest.raises(ValueError):
        a.ip.add_hook("prerouting", hook)


def _recorder(seen: list[H.Packet], verdict: H.Verdict = H.ACCEPT,
              proto: int | None = None) -> H.Hook:
    def hook(packet: H.Packet) -> H.Verdict:
        if proto is not None and packet.proto != proto:
            return H.ACCEPT
        seen.append(packet)
        return verdict
    return hook


def test_input_drop_makes_a_udp_datagram_disappear(pair: tuple[Host, Host]) -> None:
    a, b = pair
    seen: list[H.Packet] = []
    drop_udp = _recorder(seen, H.DROP, proto=17)
    b.ip.add_hook(H.INPUT, drop_udp)
    server = _udp_server(b, 9)
    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.sendto(b"dropped", (B_ADDR, 9))
    with pytest.raises(BlockingIOError):
        server.recv(100)
    assert len(seen) == 1
    packet = seen[0]
    assert (packet.point, packet.src, packet.dst, packet.proto) == (H.INPUT, A_BYTES, B_BYTES, 17)
    assert bytes(packet.payload[8:]) == b"dropped" and packet.iface is not None
    assert b.ip.hooks is not None and b.ip.hooks.dropped[H.INPUT] == 1
    assert b.ip.counters["icmp_errors_sent"] == 0  # gone, not refused
    assert b.ip.udp.counters["in"] == 0
    b.ip.remove_hook(H.INPUT, drop_udp)  # (the next datagram arrives)
    client.sendto(b"arrives", (B_ADDR, 9))
    assert server.recv(100) == b"arrives"


def test_output_drop_stops_a_ping(pair: tuple[Host, Host]) -> None:
    a, b = pair
    seen: list[H.Packet] = []
    a.ip.add_hook(H.OUTPUT, _recorder(seen, H.DROP, proto=1))
    with pytest.raises(PermissionError) as info:
        a.ping(B_ADDR, timeout=0.5)
    assert info.value.errno == errno.EPERM  # Linux's answer when OUTPUT drops a send
    assert len(seen) == 1 and seen[0].data is None and seen[0].dst == B_BYTES
    assert a.ip.hooks is not None and a.ip.hooks.dropped[H.OUTPUT] == 1
    assert b.ip.counters["echo_replies_sent"] == 0


def test_pre_and_post_routing_see_every_packet_and_post_routing_can_drop(
        pair: tuple[Host, Host]) -> None:
    a, b = pair
    arriving: list[H.Packet] = []
    leaving: list[H.Packet] = []
    b.ip.add_hook(H.PRE_ROUTING, _recorder(arriving))
    a.ip.add_hook(H.POST_ROUTING, _recorder(leaving))
    assert a.ping(B_ADDR) < 1.0
    assert [p.proto for p in leaving] == [1]  # the echo request, on a's eth0
    assert leaving[0].iface is a.ip.interface("eth0") and leaving[0].data is not None
    assert [p.proto for p in arriving] == [1] and arriving[0].src == A_BYTES
    a.ip.add_hook(H.POST_ROUTING, _recorder([], H.DROP, proto=1))
    with pytest.raises(TimeoutError):
        a.ping(B_ADDR, timeout=0.2)
    assert a.ip.hooks is not None and a.ip.hooks.dropped[H.POST_ROUTING] == 1
    assert len(arriving) == 1  # nothing more reached b


def test_pre_routing_replacement_rewrites_the_destination_port(pair: tuple[Host, Host]) -> None:
    """DNAT in a few lines: datagrams for port 9 go to port 10 (a trusted link: no checksum
    to fix)."""
    a, b = pair

    def redirect(packet: H.Packet) -> H.Verdict:
        if packet.proto != 17 or packet.data is None:
            return H.ACCEPT
        ihl = (packet.data[0] & 0x0F) * 4
        data = bytearray(packet.data)
        if data[ihl + 2: ihl + 4] == (9).to_bytes(2, "big"):
            data[ihl + 2: ihl + 4] = (10).to_bytes(2, "big")
        return bytes(data)

    b.ip.add_hook(H.PRE_ROUTING, redirect)
    server = _udp_server(b, 10)
    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.sendto(b"to nine", (B_ADDR, 9))
    assert server.recv(100) == b"to nine"


def test_forward_sees_routed_packets_and_can_drop() -> None:
    with multisock.Network(seed=3) as net:
        a = net.add_host("a", "10.1.0.1/24")
        r = net.add_router("r", "10.1.0.254/24")
        b = net.add_host("b", "10.2.0.1/24")
        net.link(a, r)
        net.link(r, b, b_addr=None, a_addr="10.2.0.254/24")
        a.add_route("0.0.0.0/0", via="10.1.0.254")
        b.add_route("0.0.0.0/0", via="10.2.0.254")
        seen: list[H.Packet] = []
        r.ip.add_hook(H.FORWARD, _recorder(seen))
        assert a.ping("10.2.0.1") < 1.0
        assert [p.proto for p in seen] == [1, 1]  # the request, then the reply
        r.ip.add_hook(H.FORWARD, _recorder([], H.DROP))
        with pytest.raises(TimeoutError):
            a.ping("10.2.0.1", timeout=0.2)
        assert r.ip.hooks is not None and r.ip.hooks.dropped[H.FORWARD] == 1
        assert b.ip.counters["echo_replies_sent"] == 1


# ------------------------------------------------------------ the fast paths stay

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
def test_without_hooks_tcp_takes_the_fast_paths(pair: tuple[Host, Host]) -> None:
    a, b = pair
    listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((B_ADDR, 80))
    listener.listen()
    client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect((B_ADDR, 80))
    server, _ = listener.accept()

    def exchange() -> None:
        client.sendall(b"x" * 10000)
        got = 0
        while got < 10000:
            got += len(server.recv(65536))

    with _calls_in_ip() as calls:
        exchange()
    assert calls["input"] > 0 and calls["tcp_output"] > 0
    # neither general path ran: no header object parsed on input, no output() call
    assert calls["_input4"] == 0 and calls["output"] == 0 and calls["_send"] == 0

    # hooks at every point ride the fast paths: they see each segment there (OUTPUT the
    # pieces unjoined, the IP packet at INPUT/PRE_/POST_ROUTING) and the general paths stay idle
    seen: dict[str, list[H.Packet]] = {point: [] for point in H.POINTS}
    for host in (a, b):
        for point in H.POINTS:
            host.ip.add_hook(point, _recorder(seen[point]))
    with _calls_in_ip() as calls:
        exchange()
    assert calls["_input4"] == 0 and calls["output"] == 0 and calls["_send"] == 0
    data_out = [p for p in seen[H.OUTPUT] if p.length > 40]
    assert data_out and all(p.data is None and len(p.rest) for p in data_out)
    assert all(p.payload[:2] == bytes(p.head[:2]) for p in data_out)  # joined when asked
    assert len(seen[H.INPUT]) == len(seen[H.PRE_ROUTING]) > 0
    assert len(seen[H.POST_ROUTING]) == len(seen[H.OUTPUT]) and not seen[H.FORWARD]
    assert sum(len(p.rest) for p in data_out) >= 10000  # the data, apart from the headers

    # a hook dropping at INPUT still drops on the fast path (and the sender retransmits)
    drop: H.Hook = _recorder([], H.DROP, proto=6)
    b.ip.add_hook(H.INPUT, drop)
    client.send(b"lost")
    assert b.ip.hooks is not None and b.ip.hooks.dropped[H.INPUT] > 0
    b.ip.remove_hook(H.INPUT, drop)

    for host in (a, b):
        for point in H.POINTS:
            hooks = host.ip.hooks
            assert hooks is not None
            for hook in getattr(hooks, point):
                host.ip.remove_hook(point, hook)
        assert host.ip.hooks is None
    with _calls_in_ip() as calls:
        assert server.recv(100) == b"lost"  # (retransmitted, taken now)
        exchange()
    assert calls["_input4"] == 0 and calls["output"] == 0

    tapped: list[int] = []
    b.ip.raw_listeners.append(lambda _s, _d, proto, _p: tapped.append(proto))  # a raw
    with _calls_in_ip() as calls:                                 # listener: the general way
        exchange()
    assert calls["_input4"] > 0 and tapped
    b.ip.raw_listeners.clear()
