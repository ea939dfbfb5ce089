"""Large TCP payloads cross an in-process link unjoined (stack/ip.py ``tcp_output`` and
``input_split``, net/link.py ``Direction.send_split``): the receiver gets the same bytes, the
counters read what a joined packet gives, and anything that must see a whole packet (a
capture, an impairment, the no-listener hook, a header split in the wrong place) still does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from multisock.net.host import Host
from multisock.net.network import Network
from multisock.stack.ip import SPLIT_MIN

A_ADDR, B_ADDR = "10.0.0.1", "10.0.0.2"


@pytest.fixture
def net() -> Iterator[Network]:
    with multisock.Network(seed=7) as network:
        yield network


class _Recorder:
    """Stands in for an interface's ``transmit_split``: counts what the IP layer handed over
    apart, and passes it on."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.calls = 0
        self.payload_bytes = 0

    def __call__(self, head: bytes, payload: Any, next_hop: bytes, now: float) -> None:
        self.calls += 1
        self.payload_bytes += len(payload)
        self.out(head, payload, next_hop, now)


def _hosts(net: Network, **impairments: Any) -> tuple[Host, Host, Any]:
    a = net.add_host("a", f"{A_ADDR}/24")
    b = net.add_host("b", f"{B_ADDR}/24")
    return a, b, net.link(a, b, **impairments)


def _connected(a: Host, b: Host, to: str) -> tuple[Any, Any, Any]:
    """(listener on b, client on a, the server end b accepted) connected to ``to``."""
    listener = b.socket()
    listener.bind((to, 0))
    listener.listen()
    client = a.socket()
    client.connect((to, listener.getsockname()[1]))
    server, _ = listener.accept()
    return listener, client, server


def _transfer(a: Host, b: Host, data: bytes | bytearray, mutate: bool = False,
              to: str = B_ADDR) -> bytes:
    """``data`` from a to b over TCP (to the address ``to``); with ``mutate``, the sender
    overwrites its buffer as soon as ``sendall`` returns (the receiver must still get what
    was sent)."""
    listener, client, server = _connected(a, b, to)
    got = bytearray()

    def receive() -> None:
        while True:
            chunk = server.recv(1 << 20)
            if not chunk:
                return
            got.extend(chunk)

    reader = threading.Thread(target=receive)
    reader.start()
    client.sendall(data)
    if mutate:
        assert isinstance(data, bytearray)
        data[:] = bytes(len(data))
    client.close()
    reader.join(timeout=30)
    assert not reader.is_alive()
    for s in (server, listener):
        s.close()
    return bytes(got)


def _pattern(size: int) -> bytes:
    return bytes((i * 7 + i // 251) & 0xFF for i in range(size))


def test_a_bulk_transfer_takes_the_split_path_and_arrives_intact(net: Network) -> None:
    a, b, _ = _hosts(net)
    iface = a.ip.interfaces[1]
    assert iface.transmit_split is not None  # a link into a host offers it
    recorder = _Recorder(iface.transmit_split)
    iface.transmit_split = recorder
    data = _pattern(3 << 20)
    assert _transfer(a, b, data) == data
    assert recorder.calls > 0
    assert recorder.payload_bytes >= len(data) // 2  # most of it went apart
    assert b.ip.tcp is not None and not b.ip.tcp.counters["bad_segments"]


def test_a_mutable_sender_buffer_changed_after_sendall_does_not_change_what_arrives(
        net: Network) -> None:
    a, b, _ = _hosts(net)
    data = bytearray(_pattern(1 << 20))
    expected = bytes(data)
    assert _transfer(a, b, data, mutate=True) == expected


def _pump(a: Host, b: Host, data: bytes) -> bytes:
    """``data`` from a to b in this one thread (non-blocking sends and receives in turn), so
    the segments and ACKs are the same from run to run."""
    listener, client, server = _connected(a, b, B_ADDR)
    client.setblocking(False)
    server.setblocking(False)
    sent, got = 0, bytearray()
    while len(got) < len(data):
        if sent < len(data):
            try:
                sent += client.send(data[sent:sent + (256 << 10)])
            except BlockingIOError:
                pass
        try:
            got.extend(server.recv(1 << 20))
        except BlockingIOError:
            pass
    for s in (client, server, listener):
        s.close()
    return bytes(got)


def test_counters_read_the_same_as_with_joined_packets() -> None:
    data = _pattern(1 << 20)
    readings = []
    for split in (True, False):
        with multisock.Network(seed=7) as network:
            a, b, _ = _hosts(network)
            if not split:
                for host in (a, b):
                    host.ip.interfaces[1].transmit_split = None
            assert _pump(a, b, data) == data
            readings.append((dict(a.ip.interfaces[1].counters), dict(b.ip.interfaces[1].counters),
                             a.ip.counters["out_packets"], b.ip.counters["in_packets"],
                             b.ip.counters["in_delivered"]))
    assert readings[0] == readings[1]
    assert readings[0][1]["rx_bytes"] > len(data)


@pytest.mark.parametrize("impairment", [{"delay": "1ms"}, {"loss": 0.01}])
def test_an_impaired_link_gets_whole_packets(net: Network, impairment: dict[str, Any]) -> None:
    a, b, link = _hosts(net, **impairment)
    data = _pattern(1 << 20)
    assert _transfer(a, b, data) == data
    assert link.directions[0].impairment.counters["offered"] > 0


def test_a_capture_sees_whole_packets(net: Network) -> None:
    a, b, link = _hosts(net)
    wire: list[bytes] = []
    link.directions[0].taps.append(wire.append)
    data = _pattern(1 << 20)
    assert _transfer(a, b, data) == data
    big = [p for p in wire if len(p) > SPLIT_MIN]
    assert big, "the capture saw no large packet"
    for packet in big:
        total = int.from_bytes(packet[2:4], "big")
        assert total == len(packet)  # the IP header's length covers headers and payload
        assert bytes(packet[52:60]) in data  # payload bytes are in the packet itself


def test_a_header_split_in_the_wrong_place_is_parsed_whole(net: Network) -> None:
    """TCP input given a 'header' that runs into the payload (its data offset says 32 bytes,
    the split is at 40) joins the pieces and parses them as one segment: here a SYN for no
    listener, answered with a RST, not counted as malformed."""
    a, b, _ = _hosts(net)
    tcp = b.ip.tcp
    assert tcp is not None
    src, dst = socket.inet_aton(A_ADDR), socket.inet_aton(B_ADDR)
    from multisock.wire import tcp as wire

    segment = wire.build(40000, 9, 1000, 0, wire.SYN, 65535, ts=(1, 0)) + b"x" * 20
    assert (segment[12] >> 4) * 4 == 32
    with net.driver.lock:
        tcp.input(src, dst, memoryview(segment[:40]), net.driver.now(),
                  memoryview(segment[40:]))
    assert tcp.counters["no_socket"] == 1
    assert not tcp.counters["bad_segments"]


def test_the_no_listener_hook_sees_a_split_segment_whole(net: Network) -> None:
    a, b, _ = _hosts(net)
    tcp = b.ip.tcp
    assert tcp is not None
    seen: list[bytes] = []

    def hook(src: bytes, dst: bytes, hdr: Any, segment: memoryview, now: float) -> bool:
        seen.append(bytes(segment))
        return True

    tcp.no_listener = hook
    from multisock.wire import tcp as wire

    head = wire.build(40000, 9, 1000, 5, wire.ACK, 65535)
    payload = b"p" * 100
    with net.driver.lock:
        tcp.input(socket.inet_aton(A_ADDR), socket.inet_aton(B_ADDR), memoryview(head),
                  net.driver.now(), memoryview(payload))
    assert seen == [head + payload]


def test_loopback_takes_the_split_path_too(net: Network) -> None:
    a, _, _ = _hosts(net)
    recorder = _Recorder(a.loopback.transmit_split)
    a.loopback.transmit_split = recorder
    data = _pattern(2 << 20)
    assert _transfer(a, a, data, to="127.0.0.1") == data
    assert recorder.calls > 0


def test_an_impaired_or_captured_loopback_gets_whole_packets(net: Network) -> None:
    a, _, _ = _hosts(net)
    seen: list[int] = []
    a._loopback_taps.append(lambda packet: seen.append(len(packet)))
    data = _pattern(1 << 20)
    assert _transfer(a, a, data, to="127.0.0.1") == data
    assert max(seen) > SPLIT_MIN  # the tap saw the large packets, joined
    a._loopback_taps.clear()
    a.impair_loopback(delay="1ms")
    assert _transfer(a, a, data, to="127.0.0.1") == data
