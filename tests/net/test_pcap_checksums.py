"""The capture holds packets as they would be on a wire: checksums filled (issue 15 item 16).

On trusted links the stack leaves IPv4 header and transport checksums zero (checksum
offload); ``tcpdump -vv`` and Wireshark flagged every packet of a capture. Every checksum of
the capture is verified twice: with multisock's own wire/checksum, and by dpkt recomputing it.
"""

from __future__ import annotations

import io
import socket
from collections import defaultdict
from pathlib import Path
from typing import Any

import dpkt
import pytest

import multisock
from multisock.net import pcap
from multisock.wire.checksum import internet_checksum, verify_transport_checksum

TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58


def read(path: Path) -> list[bytes]:
    with path.open("rb") as f:
        return [bytes(buf) for _ts, buf in dpkt.pcap.Reader(f)]


def transport_ok(proto: int, src: bytes, dst: bytes, segment: bytes) -> bool:
    if proto == ICMP:
        return internet_checksum(segment) == 0
    return verify_transport_checksum(src, dst, proto, segment)


def check_all(packets: list[bytes]) -> dict[str, int]:
    """Verify every checksum (fragments once reassembled); count what was verified."""
    seen: dict[str, int] = defaultdict(int)
    fragments: dict[tuple[Any, ...], dict[int, bytes]] = defaultdict(dict)
    ends: dict[tuple[Any, ...], int] = {}
    for buf in packets:
        if buf[0] >> 4 == 4:
            ihl = (buf[0] & 15) * 4
            assert internet_checksum(buf[:ihl]) == 0, f"IPv4 header checksum of {buf[:ihl].hex()}"
            seen["ipv4 header"] += 1
            src, dst, proto = buf[12:16], buf[16:20], buf[9]
            flags = int.from_bytes(buf[6:8], "big")
            offset, more = (flags & 0x1FFF) * 8, flags & 0x2000
            data = buf[ihl:int.from_bytes(buf[2:4], "big")]
            key: tuple[Any, ...] = (src, dst, proto, buf[4:6])
        else:
            src, dst, proto = buf[8:24], buf[24:40], buf[6]
            data = buf[40:]
            offset = more = 0
            if proto == 44:  # the fragment header our stack writes
                proto, field = data[0], int.from_bytes(data[2:4], "big")
                offset, more = field & 0xFFF8, field & 1
                key = (src, dst, proto, data[4:8])
                data = data[8:]
        if offset or more:
            fragments[key][offset] = data
            if not more:
                ends[key] = offset + len(data)
            seen["fragment"] += 1
            continue
        assert transport_ok(proto, src, dst, data), f"checksum of {buf.hex()}"
        seen[f"ipv{4 if len(src) == 4 else 6} {proto}"] += 1
    for key, pieces in fragments.items():
        whole = b"".join(pieces[o] for o in sorted(pieces))
        assert len(whole) == ends[key]
        assert transport_ok(key[2], key[0], key[1], whole), f"reassembled checksum of {key}"
        seen[f"fragmented ipv{4 if len(key[0]) == 4 else 6} {key[2]}"] += 1
    return dict(seen)


def dpkt_recomputes_the_same(packets: list[bytes]) -> int:
    """dpkt's own checksum code agrees (unfragmented IPv4 TCP/UDP: what it recomputes)."""
    checked = 0
    for buf in packets:
        if buf[0] >> 4 != 4:
            continue
        ip = dpkt.ip.IP(buf)
        if ip.p not in (TCP, UDP) or ip.mf or ip.offset:
            continue
        want = (ip.sum, ip.data.sum)
        ip.sum = 0
        ip.data.sum = 0
        again = dpkt.ip.IP(bytes(ip))
        assert (again.sum, again.data.sum) == want
        checked += 1
    return checked


def exchange(net: multisock.Network, a: Any, b: Any, a_addr: str, b_addr: str,
             family: int) -> None:
    """A TCP connection with data both ways and a close, a UDP echo, a ping."""
    srv = b.socket(family, socket.SOCK_STREAM)
    srv.bind((b_addr, 8080))
    srv.listen()
    cli = a.socket(family, socket.SOCK_STREAM)
    cli.settimeout(5)
    cli.connect((b_addr, 8080))
    conn, _ = srv.accept()
    conn.settimeout(5)
    cli.sendall(b"GET / HTTP/1.0\r\n\r\n" * 50)
    assert conn.recv(65536)
    conn.sendall(b"x" * 100_000)
    got = 0
    while got < 100_000:
        got += len(cli.recv(65536))
    cli.close()
    assert conn.recv(10) == b""
    conn.close()
    srv.close()
    rx = b.socket(family, socket.SOCK_DGRAM)
    rx.bind((b_addr, 5353))
    tx = a.socket(family, socket.SOCK_DGRAM)
    tx.settimeout(5)
    rx.settimeout(5)
    for size in (1, 100, 4000):  # 4000: fragmented on the 1500-byte link
        tx.sendto(b"u" * size, (b_addr, 5353))
        data, peer = rx.recvfrom(65536)
        assert len(data) == size
        rx.sendto(data, peer)
        assert len(tx.recv(65536)) == size
    tx.close()
    rx.close()
    a.ping(b_addr)


def test_capture_of_a_trusted_link_has_every_checksum(tmp_path: Path) -> None:
    path = tmp_path / "trace.pcap"
    with multisock.Network(seed=16) as net:
        a = net.add_host("a", "10.16.0.1/24", "fd16::1/64")
        b = net.add_host("b", "10.16.0.2/24", "fd16::2/64")
        link = net.link(a, b, mtu=1500)
        assert all(i.trusted for i in link._interfaces if i is not None)  # checksum offload
        net.capture(str(path))
        exchange(net, a, b, "10.16.0.1", "10.16.0.2", socket.AF_INET)
        exchange(net, a, b, "fd16::1", "fd16::2", socket.AF_INET6)
        exchange(net, a, a, "127.0.0.1", "127.0.0.1", socket.AF_INET)  # loopback
    packets = read(path)
    seen = check_all(packets)
    assert seen["ipv4 header"] > 40
    for kind in ("ipv4 6", "ipv4 17", "ipv4 1", "ipv6 6", "ipv6 17", "ipv6 58",
                 "fragmented ipv4 17", "fragmented ipv6 17"):
        assert seen.get(kind, 0) >= 2, (kind, seen)
    assert dpkt_recomputes_the_same(packets) > 40


def test_the_link_is_trusted_so_the_stack_sent_zero_checksums(tmp_path: Path) -> None:
    """Without the writer's filling (fill_checksums=False), the same exchange shows the
    zeros the stack put on the wire: what the test above proves filled."""
    buf = io.BytesIO()
    with multisock.Network(seed=16) as net:
        a = net.add_host("a", "10.16.0.1/24")
        b = net.add_host("b", "10.16.0.2/24")
        link = net.link(a, b, mtu=1500)
        link.capture(pcap.PcapWriter(buf, fill_checksums=False))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.sendto(b"zero", ("10.16.0.2", 9))
        tx.close()
    record = buf.getvalue()[24 + 16:]
    assert record[10:12] == b"\0\0" and record[20 + 6 : 20 + 8] == b"\0\0"


def ipv4_udp(payload: bytes, *, ip_sum: bytes = b"\0\0", udp_sum: bytes = b"\0\0",
             flags: int = 0, ident: int = 7, proto: int = UDP) -> bytes:
    length = 20 + len(payload)
    return (bytes([0x45, 0]) + length.to_bytes(2, "big") + ident.to_bytes(2, "big")
            + flags.to_bytes(2, "big") + bytes([64, proto]) + ip_sum
            + bytes([10, 0, 0, 1, 10, 0, 0, 2]) + payload)


def records(data: bytes) -> list[bytes]:
    return [bytes(buf) for _ts, buf in dpkt.pcap.Reader(io.BytesIO(data))]


def test_wrong_nonzero_checksums_are_written_as_they_are() -> None:
    """A forged or corrupted packet keeps its wrong checksum: the capture shows it."""
    bad = ipv4_udp(b"\x00\x01\x00\x02\x00\x0c\x12\x34data", ip_sum=b"\xde\xad")
    buf = io.BytesIO()
    writer = pcap.PcapWriter(buf)
    writer.write(bad, 1.0)
    writer.write(b"\x99not ip", 1.0)  # not IP at all, and a truncated header
    writer.write(bad[:15], 1.0)
    writer.flush()
    assert records(buf.getvalue()) == [bad, b"\x99not ip", bad[:15]]


def test_held_fragments_are_bounded_and_all_written() -> None:
    """First fragments whose rest never comes are held, but only so many; every packet is in
    the file at the end, in order of arrival per datagram."""
    buf = io.BytesIO()
    writer = pcap.PcapWriter(buf)
    firsts = [ipv4_udp(b"\x00\x01\x00\x02\x00\x20\x00\x00" + bytes(16), flags=0x2000, ident=i)
              for i in range(200)]
    for i, packet in enumerate(firsts):
        writer.write(packet, float(i))
        assert writer._wire is not None and len(writer._wire.held) <= pcap._MAX_HELD
    non_first = ipv4_udp(bytes(16), flags=3, ident=5000)  # offset 24, no first: not held
    writer.write(non_first, 500.0)
    writer.close()
    out = records(buf.getvalue())
    assert len(out) == 201
    assert sorted(int.from_bytes(p[4:6], "big") for p in out) == [*range(200), 5000]
    assert all(internet_checksum(p[:20]) == 0 for p in out)  # headers filled all the same
    assert all(p[26:28] == b"\0\0" for p in out[:200])  # incomplete: transport as it was


@pytest.mark.parametrize("order", ["in order", "duplicate offset"])
def test_fragmented_udp_gets_its_checksum_from_the_whole_datagram(order: str) -> None:
    payload = bytes(range(256)) * 2
    udp = (1234).to_bytes(2, "big") + (53).to_bytes(2, "big") + (8 + len(payload)).to_bytes(
        2, "big") + b"\0\0" + payload
    first = ipv4_udp(udp[:256], flags=0x2000, ident=9)
    second = ipv4_udp(udp[256:], flags=256 // 8, ident=9)
    buf = io.BytesIO()
    writer = pcap.PcapWriter(buf)
    writer.write(first, 1.0)
    if order == "duplicate offset":
        writer.write(first, 1.5)  # cannot be completed as one datagram: written as it is
    writer.write(second, 2.0)
    writer.close()
    out = records(buf.getvalue())
    if order == "in order":
        assert [p[6:8] for p in out] == [first[6:8], second[6:8]]
        assert verify_transport_checksum(out[0][12:16], out[0][16:20], UDP,
                                         out[0][20:] + out[1][20:])
    else:
        assert len(out) == 3 and out[0][26:28] == b"\0\0"


def test_tcpdump_finds_no_bad_checksum(tmp_path: Path) -> None:
    """What the issue saw: ``tcpdump -vv`` flagged every packet of a trusted-link capture."""
    import shutil
    import subprocess

    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip("tcpdump is not installed (apt-get install tcpdump)")
    path = tmp_path / "trace.pcap"
    with multisock.Network(seed=17) as net:
        a = net.add_host("a", "10.17.0.1/24", "fd17::1/64")
        b = net.add_host("b", "10.17.0.2/24", "fd17::2/64")
        net.link(a, b, mtu=1500)
        net.capture(str(path))
        exchange(net, a, b, "10.17.0.1", "10.17.0.2", socket.AF_INET)
        exchange(net, a, b, "fd17::1", "fd17::2", socket.AF_INET6)
    out = subprocess.run([tcpdump, "-vv", "-n", "-r", str(path)], capture_output=True,
                         text=True, check=True).stdout
    flagged = [line for line in out.splitlines() if "incorrect" in line or "bad cksum" in line]
    assert flagged == []
    assert out.count("(correct)") > 100
