"""Capture read back with an independent reader (dpkt); impairments seen end to end."""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt
import pytest

import multisock
from multisock.net.impairments import GilbertElliott


def test_pcap_holds_every_packet_of_an_exchange(tmp_path: Path) -> None:
    path = tmp_path / "trace.pcap"
    with multisock.Network(seed=5) as net:
        a = net.add_host("a", "10.0.0.1/24", "fd00::1/64")
        b = net.add_host("b", "10.0.0.2/24", "fd00::2/64")
        net.link(a, b)
        net.capture(str(path))
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("0.0.0.0", 5000))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(5):
            tx.sendto(f"datagram {i}".encode(), ("10.0.0.2", 5000))
        a.ping("fd00::2")
        rx.settimeout(1)
        assert [rx.recv(100) for _ in range(5)][-1] == b"datagram 4"
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == dpkt.pcap.DLT_RAW or reader.datalink() == 101
        packets = [buf for _ts, buf in reader]
    udp_payloads = []
    icmp6 = 0
    for buf in packets:
        if buf[0] >> 4 == 4:
            ip = dpkt.ip.IP(buf)
            if isinstance(ip.data, dpkt.udp.UDP):
                udp_payloads.append(bytes(ip.data.data))
        else:
            ip6 = dpkt.ip6.IP6(buf)
            if ip6.nxt == 58:
                icmp6 += 1
    assert udp_payloads == [f"datagram {i}".encode() for i in range(5)]
    assert icmp6 == 2  # request and reply


@pytest.mark.parametrize("loss", [0.1, 0.3])
def test_observed_loss_matches_configuration(loss: float) -> None:
    with multisock.Network(seed=11) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        link = net.link(a, b, loss=loss)
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("0.0.0.0", 5000))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        n = 4000
        for i in range(n):
            tx.sendto(i.to_bytes(4, "big"), ("10.0.0.2", 5000))
        rx.setblocking(False)
        got = 0
        while True:
            try:
                rx.recv(10)
            except BlockingIOError:
                break
            got += 1
        stats = link.stats()["a:eth0->b:eth0"]
        assert stats["lost"] == n - got
        sigma = (n * loss * (1 - loss)) ** 0.5
        assert abs((n - got) - n * loss) < 4 * sigma


def _fates(seed: int) -> list[int]:
    with multisock.Network(seed=seed) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b, loss=GilbertElliott(p=0.05, r=0.3))
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("0.0.0.0", 5000))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(500):
            tx.sendto(i.to_bytes(4, "big"), ("10.0.0.2", 5000))
        rx.setblocking(False)
        out = []
        while True:
            try:
                out.append(int.from_bytes(rx.recv(10), "big"))
            except BlockingIOError:
                return out


def test_same_seed_same_fate_and_bursty_loss() -> None:
    first, second, other = _fates(3), _fates(3), _fates(4)
    assert first == second
    assert first != other
    lost = sorted(set(range(500)) - set(first))
    bursts = sum(1 for i, x in enumerate(lost) if i == 0 or lost[i - 1] != x - 1)
    assert len(lost) > bursts  # losses come in runs


def test_partition_and_rate_limit() -> None:
    with multisock.Network(seed=2) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        # 82 ms per packet: the 20 sends finish long before the first one has left, even on a
        # busy machine (at 1 Mbit/s, 8 ms, a descheduled sender once saw 14 drops, not 15)
        link = net.link(a, b, rate="100kbit", queue=5)
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("0.0.0.0", 5000))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            tx.sendto(b"x" * 1000, ("10.0.0.2", 5000))
        stats = link.stats()["a:eth0->b:eth0"]
        assert stats["queue_dropped"] == 15
        rx.settimeout(2)
        for _ in range(5):
            rx.recv(2000)
        link.down()
        tx.sendto(b"lost", ("10.0.0.2", 5000))
        rx.settimeout(0.1)
        with pytest.raises(TimeoutError):
            rx.recv(10)
        link.up()
        tx.sendto(b"back", ("10.0.0.2", 5000))
        rx.settimeout(1)
        assert rx.recv(10) == b"back"


def test_corruption_is_caught_by_checksums() -> None:
    with multisock.Network(seed=8) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b, corrupt=1.0)
        assert not b.ip.interface("eth0").trusted
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("0.0.0.0", 5000))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(50):
            tx.sendto(b"y" * 200, ("10.0.0.2", 5000))
        rx.setblocking(False)
        with pytest.raises(BlockingIOError):
            rx.recv(1000)
        assert b.ip.counters["in_bad_checksum"] + b.ip.counters["in_malformed"] == 50
