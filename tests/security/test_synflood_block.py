"""SYN-flood detection with automatic blocking: during a detected flood, a source that sent
``block_over`` SYNs within the window is blocked; a forged source, seen once, is not."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import multisock
from multisock.security.detect import SynFloodDetector
from multisock.security.flow import SYN, Flow

HEAVY = b"\x0a\x09\x00\x07"


def _syn(src: bytes) -> Flow:
    flow = Flow(6, src, b"\x0a\x00\x00\x02", memoryview(b""), 40, "eth0")
    flow.dport, flow.flags = 80, SYN
    return flow


def test_only_a_source_past_the_threshold_is_to_be_blocked() -> None:
    detector = SynFloodDetector(lambda *e: None, lambda: 0, rate=100.0, window=1.0,
                                block_for=30.0, block_over=5)
    verdicts: list[tuple[bytes, bool]] = []
    for n in range(300):  # forged sources, one SYN each, with one real source among them
        src = HEAVY if n % 10 == 0 else (n + 1000).to_bytes(4, "big")
        verdicts.append((src, detector.see(_syn(src), n * 0.002)))
    blocked = {src for src, block in verdicts if block}
    assert blocked == {HEAVY}  # (its SYNs past the 5th, after the flood was seen)
    assert detector.detected == 1 and detector.blocked >= 1
    quiet = SynFloodDetector(lambda *e: None, lambda: 0, rate=100.0, window=1.0,
                             block_over=5)  # no block_for: report only, as before
    assert not any(quiet.see(_syn(HEAVY), n * 0.002) for n in range(300))
    with pytest.raises(ValueError):
        SynFloodDetector(lambda *e: None, lambda: 0, block_for=0.0)


def test_a_flooding_host_is_blocked_then_released() -> None:
    with multisock.Network(seed=4) as net:
        attacker = net.add_host("attacker", "10.9.0.1/24")
        target = net.add_host("target", "10.9.0.2/24")
        net.link(attacker, target)
        listener = target.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("0.0.0.0", 80))
        listener.listen(1000)
        target.security.detect_syn_flood(rate=0.5, window=40.0, block_for=60.0, block_over=22)
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
        kinds = [e.kind for e in got]
        assert kinds[0] == "syn_flood" and "syn_flood_block" in kinds
        assert got[kinds.index("syn_flood_block")].source == "10.9.0.1"
        probe = attacker.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(0.3)
        with pytest.raises(TimeoutError):  # blocked: silence
            probe.connect(("10.9.0.2", 80))
        probe.close()
        assert target.security.counters["blocked"] >= 1
        target.ip.now += 61.0  # until the time is up (the stack's clock)
        assert not target.security.blocklist.blocks(b"\x0a\x09\x00\x01", target.ip.now)
