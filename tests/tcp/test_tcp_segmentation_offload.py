"""Segmentation offload (TSO) in the engine: where the route's interface cuts segments
itself (``route_gso``), new data leaves in segments of several MSS with the MSS to cut them
at; the cut pieces the peer receives are ordinary segments, and loss among them is recovered
piece by piece (SACK), never by resending whole large segments."""

from __future__ import annotations

import pytest
from tcpnet import Wire
from test_tcp_transfer import transfer

from multisock.stack.gso import split_packet, tcp_pieces
from multisock.wire import tcp as wire


def test_bulk_leaves_in_segments_of_several_mss_and_arrives_intact() -> None:
    # the peer takes each large segment whole (a kernel's local delivery) and ACKs it: the
    # window that ACK opens goes out as one large segment again
    w = Wire(mtu=1500, gso=65535, delay=0.001, gso_whole=True)
    sent: list[tuple[int, int]] = []
    original = w.host_a.tcp_output

    def spy(src, dst, segment, ttl=None, tos=0, payload=b"", gso=0):  # type: ignore[no-untyped-def]
        sent.append((len(payload), gso))
        original(src, dst, segment, ttl, tos, payload, gso)

    w.host_a.tcp_output = spy  # type: ignore[method-assign]
    transfer(w, 4 << 20, chunk=1 << 20)
    mss = 1448  # 1500 - 40 - timestamps
    large = [(n, g) for n, g in sent if n > mss]
    assert large, "no segment of several MSS was sent"
    assert all(g == mss for _, g in large)  # each says where to cut: the MSS
    assert max(n for n, _ in large) > 16 * mss
    assert all(n <= 65535 - 40 - 40 for n, _ in large)  # whole IP packets, options' room kept
    # most of the data went in large segments: far fewer sends than MSS-sized pieces
    assert len(sent) < (4 << 20) // mss // 4
    assert w.host_a.gso_sent == len(large)


def test_without_offload_every_segment_fits_the_mss() -> None:
    w = Wire(mtu=1500, gso=0, delay=0.001)
    sent: list[int] = []
    original = w.host_a.tcp_output

    def spy(src, dst, segment, ttl=None, tos=0, payload=b"", gso=0):  # type: ignore[no-untyped-def]
        assert gso == 0
        sent.append(len(payload))
        original(src, dst, segment, ttl, tos, payload, gso)

    w.host_a.tcp_output = spy  # type: ignore[method-assign]
    transfer(w, 1 << 20)
    assert max(sent) <= 1448


@pytest.mark.parametrize("loss", [0.01, 0.05])
def test_loss_among_the_cut_pieces_is_recovered_by_the_mss(loss: float) -> None:
    """The wire drops cut pieces (one MSS each): the transfer completes intact (transfer()
    compares digests) and every retransmission is at most one MSS - SACK tells which
    pieces of a large segment arrived."""
    w = Wire(mtu=1500, gso=65535, delay=0.002, loss=loss, seed=7)
    resent: list[int] = []
    original = w.host_a.tcp_output
    highest = [0]

    def spy(src, dst, segment, ttl=None, tos=0, payload=b"", gso=0):  # type: ignore[no-untyped-def]
        hdr, _ = wire.parse(bytes(segment) + bytes(payload))
        if payload and hdr.seq < highest[0]:
            resent.append(len(payload))
        highest[0] = max(highest[0], hdr.seq + len(payload))
        original(src, dst, segment, ttl, tos, payload, gso)

    w.host_a.tcp_output = spy  # type: ignore[method-assign]
    transfer(w, 2 << 20, chunk=1 << 18)
    assert w.dropped > 0 and w.host_a.gso_sent > 0
    assert resent and max(resent) <= 1448
    # nothing like whole large segments went twice: retransmitted bytes stay within a few
    # times what the wire dropped (each drop is at most one MSS)
    assert sum(resent) <= 4 * 1448 * w.dropped


def test_urgent_mode_keeps_segments_to_the_mss() -> None:
    w = Wire(mtu=1500, gso=65535, delay=0.001)
    client, server, _ = w.connect_pair()
    sizes: list[int] = []
    original = w.host_a.tcp_output

    def spy(src, dst, segment, ttl=None, tos=0, payload=b"", gso=0):  # type: ignore[no-untyped-def]
        sizes.append(len(payload))
        original(src, dst, segment, ttl, tos, payload, gso)

    w.host_a.tcp_output = spy  # type: ignore[method-assign]
    start = client.snd_max
    assert client.send(b"x" * 60_000, w.now, urgent=True) == 60_000
    w.run_until(lambda: client.snd_una == client.snd_max == start + 60_000, limit=60)
    assert sum(sizes) >= 60_000 and max(sizes) <= 1448


def test_tcp_pieces_cut_like_the_kernel() -> None:
    header = wire.build(1000, 80, 0xFFFFFF00, 5, wire.ACK | wire.PSH | wire.FIN | 0x80, 100,
                        ts=(1, 2))
    payload = bytes(range(256)) * 20  # 5120 bytes
    pieces = tcp_pieces(header, payload, 1448)
    assert [len(p) for _, p in pieces] == [1448, 1448, 1448, 776]
    seqs = [wire.parse(h)[0].seq for h, _ in pieces]
    assert seqs == [0xFFFFFF00, (0xFFFFFF00 + 1448) & 0xFFFFFFFF,
                    (0xFFFFFF00 + 2896) & 0xFFFFFFFF, (0xFFFFFF00 + 4344) & 0xFFFFFFFF]
    flags = [h[13] for h, _ in pieces]
    assert flags[0] == wire.ACK | 0x80  # CWR on the first only; PSH and FIN on the last only
    assert flags[1] == flags[2] == wire.ACK
    assert flags[3] == wire.ACK | wire.PSH | wire.FIN
    assert all(h[16:18] == b"\0\0" for h, _ in pieces)
    assert b"".join(bytes(p) for _, p in pieces) == payload
    with pytest.raises(ValueError):
        tcp_pieces(header, payload, 0)


def test_split_packet_rebuilds_ip_headers() -> None:
    from multisock.wire import ipv4, ipv6
    from multisock.wire.checksum import internet_checksum

    tcp_header = wire.build(1000, 80, 1, 5, wire.ACK | wire.PSH, 100)
    payload = b"y" * 3000
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    ip = ipv4.build(src, dst, 6, len(tcp_header) + len(payload), ident=65535, df=True)
    packets = split_packet(ip + tcp_header + payload, 1400)
    assert len(packets) == 3
    for i, packet in enumerate(packets):
        header, body = ipv4.parse(packet, verify_checksum=True)
        assert header.total_length == len(packet)
        assert header.ident == (65535 + i) & 0xFFFF
        assert internet_checksum(packet[:20]) == 0
    assert b"".join(bytes(ipv4.parse(p)[1][20:]) for p in packets) == payload
    src6, dst6 = b"\xfd" + bytes(14) + b"\x01", b"\xfd" + bytes(14) + b"\x02"
    ip6 = ipv6.build(src6, dst6, 6, len(tcp_header) + len(payload))
    packets6 = split_packet(ip6 + tcp_header + payload, 1400)
    assert [int.from_bytes(p[4:6], "big") for p in packets6] == [1420, 1420, 220]
    # not TCP, or small enough: as it is
    udp = ipv4.build(src, dst, 17, 3008) + bytes(3008)
    assert split_packet(udp, 1400) == [udp]
    assert split_packet(b"\x45", 1400) == [b"\x45"]
