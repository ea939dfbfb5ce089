"""Scan and SYN-flood detection, automatic blocking, and the example scanner against them."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import multisock
from multisock.net.host import Host
from multisock.security.detect import ScanDetector, SynFloodDetector
from multisock.security.flow import ACK, SYN, Flow

ROOT = Path(__file__).resolve().parents[2]


def _example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scanner = _example("scanner")


@pytest.fixture
def demo() -> Iterator[tuple[Host, Host]]:
    with multisock.Network(seed=2) as net:
        attacker, target, kept = scanner.demo_target(net)
        yield attacker, target
        del kept


def _tcp(src: bytes, dport: int, flags: int = SYN, dst: bytes = b"\x0a\x00\x00\x02") -> Flow:
    flow = Flow(6, src, dst, memoryview(b""), 40, "eth0")
    flow.dport, flow.flags = dport, flags
    return flow


def test_scanner_sees_drop_as_filtered_reject_as_closed_and_trips_the_detector(
        demo: tuple[Host, Host]) -> None:
    attacker, target = demo
    target.security.detect_scans(ports=20, window=5.0)
    ports = [22, 80, 443, 8080] + list(range(1000, 1030))
    states = scanner.tcp_scan(lambda kind: attacker.socket(socket.AF_INET, kind), "10.9.0.2",
                              ports, timeout=0.3)
    assert states[22] == states[80] == "open"
    assert states[443] == "filtered"  # the firewall drops
    assert states[8080] == "closed"  # the firewall rejects (ICMP port unreachable)
    assert all(states[p] == "closed" for p in range(1000, 1030))  # nothing listens: RST
    events = target.security.events("port_scan")
    assert len(events) == 1  # one event per window, not one per probe beyond the threshold
    assert events[0].source == "10.9.0.1" and events[0].details["ports"] == 20
    assert events[0].details["protocol"] == "tcp"


def test_udp_scan_reports_closed_from_icmp_and_is_detected(demo: tuple[Host, Host]) -> None:
    attacker, target = demo
    target.security.detect_scans(ports=10, window=5.0)
    answering = target.socket(socket.AF_INET, socket.SOCK_DGRAM)
    answering.bind(("0.0.0.0", 53))
    states = scanner.udp_scan(lambda kind: attacker.socket(socket.AF_INET, kind), "10.9.0.2",
                              list(range(50, 62)), timeout=0.2)
    assert states[50] == "closed" and states[53] == "open|filtered"
    assert [e.details["protocol"] for e in target.security.events("port_scan")] == ["udp"]


def test_slow_scan_under_the_window_is_not_detected_and_rate_paces_probes() -> None:
    emitted: list[Any] = []
    detector = ScanDetector(lambda *e: emitted.append(e), ports=5, window=1.0)
    src = b"\x0a\x00\x00\x01"
    for n in range(20):  # one probe every 0.3 s: at most 4 in any 1 s window
        detector.see(_tcp(src, 1000 + n), n * 0.3)
    assert emitted == []
    for n in range(5):
        detector.see(_tcp(src, 2000 + n), 100.0 + n * 0.01)
    assert len(emitted) == 1 and emitted[0][0] == "port_scan"
    # ACK segments (an established connection's) are no probes
    detector.see(_tcp(src, 3000, ACK), 200.0)
    assert detector.sources[src].ports == set()
    pacer = scanner.Pacer(1000.0)
    assert pacer.gap == pytest.approx(0.001)


def test_host_scan_is_detected() -> None:
    emitted: list[Any] = []
    detector = ScanDetector(lambda *e: emitted.append(e), ports=50, hosts=4, window=1.0)
    for n in range(4):
        detector.see(_tcp(b"\x0a\x00\x00\x01", 22, dst=bytes([10, 0, 1, n])), 0.0)
    assert [e[0] for e in emitted] == ["host_scan"] and emitted[0][2]["hosts"] == 4


def test_automatic_blocking_for_a_time(demo: tuple[Host, Host]) -> None:
    attacker, target = demo
    target.security.detect_scans(ports=5, window=5.0, block_for=60.0)
    scanner.tcp_scan(lambda kind: attacker.socket(socket.AF_INET, kind), "10.9.0.2",
                     list(range(1000, 1006)), timeout=0.2)
    # blocked: even the open port is silent now
    assert scanner.tcp_scan(lambda kind: attacker.socket(socket.AF_INET, kind), "10.9.0.2",
                            [22], timeout=0.2) == {22: "filtered"}
    assert target.security.counters["blocked"] >= 1
    target.ip.now += 61.0  # ... until the time is up (the stack's clock decides)
    src = socket.inet_aton("10.9.0.1")
    assert not target.security.blocklist.blocks(src, target.ip.now)


def test_syn_flood_is_reported_with_the_cookie_counter() -> None:
    emitted: list[Any] = []
    detector = SynFloodDetector(lambda *e: emitted.append(e), lambda: 42, rate=100.0,
                                window=1.0)
    for n in range(250):  # 250 forged sources in half a second
        detector.see(_tcp(n.to_bytes(4, "big"), 80), n * 0.002)
    assert len(emitted) == 1
    kind, _, details = emitted[0]
    assert kind == "syn_flood" and details["syns"] == 100 and details["port"] == 80
    assert details["distinct_sources"] == 100 and details["syncookies_sent"] == 42
    for n in range(50):  # a normal rate later: nothing
        detector.see(_tcp(b"\x01\x01\x01\x01", 80), 10.0 + n * 0.1)
    assert len(emitted) == 1


def test_syn_flood_on_a_host(demo: tuple[Host, Host]) -> None:
    attacker, target = demo
    target.security.detect_syn_flood(rate=0.5, window=40.0)  # 20 SYNs in 40 s
    got: list[Any] = []
    target.security.on_event(got.append)
    for _ in range(25):
        sock = attacker.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(("10.9.0.2", 80))
        except BlockingIOError:
            pass
        sock.close()
    assert [e.kind for e in got] == ["syn_flood"]
    assert got[0].details["target"] == "10.9.0.2"


def test_events_are_bounded() -> None:
    from multisock.security.events import EventLog

    log = EventLog(capacity=3)
    for n in range(5):
        log.emit(float(n), "x", "", {})
    assert [e.time for e in log.ring] == [2.0, 3.0, 4.0] and log.lost == 2
