"""CVE-2016-5696 (issue #15 item 6): with one fixed host-wide challenge-ACK budget a
second, an off-path attacker learns whether a 4-tuple exists. He sends a spoofed
in-window RST for the guessed tuple (a live connection answers it with a challenge ACK
to the victim, spending one of the budget), then spends the budget himself with
in-window RSTs on his own connection and counts the challenge ACKs he gets: one fewer
means the guess hit. Current Linux limits challenge ACKs per connection first
(tcp_invalid_ratelimit) and has no global budget by default (6.x), or a randomised one
(5.x); either way the attacker's count no longer depends on the victim."""

from __future__ import annotations

import random
import socket

import pytest
from tcpnet import A, B, RecordingHost

from multisock.stack.tcp import TcpConfig, TcpSocket, TcpStack
from multisock.wire import tcp as wire

VICTIM_PORT, ATTACKER_PORT, UNUSED_PORT = 40000, 40001, 40002


def _open(stack: TcpStack, host: RecordingHost, listener: TcpSocket, peer_port: int) -> TcpSocket:
    stack.input(B, A, memoryview(wire.build(peer_port, 80, 1000, 0, wire.SYN, 65535, mss=1460)), 0.0)
    synack, _ = wire.parse(host.sent.pop()[2])
    ack = wire.build(peer_port, 80, 1001, (synack.seq + 1) & 0xFFFFFFFF, wire.ACK, 65535)
    stack.input(B, A, memoryview(ack), 0.0)
    child = listener.accept()
    assert child is not None
    return child


def _attack(config: TcpConfig, probe_hits: bool, seconds: int = 3, rsts: int = 1000) -> list[int]:
    """Challenge ACKs the attacker sees on his own connection, second by second."""
    host = RecordingHost((A,))
    stack = TcpStack(host, config, rng=random.Random(5), secret=b"k" * 32)
    listener = stack.socket(socket.AF_INET)
    listener.bind(A, 80)
    listener.listen(16, 0.0)
    _open(stack, host, listener, VICTIM_PORT)
    _open(stack, host, listener, ATTACKER_PORT)
    seen = []
    for second in range(1, seconds + 1):
        now = second + 0.25
        host.sent.clear()
        # the spoofed probe: an in-window RST for the guessed tuple
        probe_port = VICTIM_PORT if probe_hits else UNUSED_PORT
        probe = wire.build(probe_port, 80, 1001 + 100, 0, wire.RST, 0)
        stack.input(B, A, memoryview(probe), now)
        # the attacker spends the budget on his own connection and counts
        for i in range(rsts):
            rst = wire.build(ATTACKER_PORT, 80, 1001 + 100 + i, 0, wire.RST, 0)
            stack.input(B, A, memoryview(rst), now)
        seen.append(sum(1 for _, _, seg in host.sent
                        if wire.parse(seg)[0].dst_port == ATTACKER_PORT))
    return seen


@pytest.mark.parametrize("limit", [None, 1000], ids=["default", "global-limit-1000"])
def test_attacker_cannot_tell_whether_the_tuple_exists(limit: int | None) -> None:
    config = TcpConfig() if limit is None else TcpConfig(challenge_ack_limit=limit)
    hit = _attack(config, probe_hits=True)
    miss = _attack(config, probe_hits=False)
    # before: 999 against 1,000 every second
    assert hit == miss, (hit, miss)
    assert hit == [1, 1, 1]  # one challenge ACK per connection per 0.5 s


def _fresh_owner(stack: TcpStack) -> TcpSocket:
    """A connection that has sent no challenge ACK yet, so only the host-wide budget limits it
    (a real block: the compiled build checks argument types)."""
    return TcpSocket(stack, socket.AF_INET)


def test_a_global_budget_is_drawn_at_random_each_second() -> None:
    """Where a host-wide limit is configured, the number it allows varies from second
    to second (Linux draws it in [limit/2, limit*3/2)), so counting it down tells little."""
    host = RecordingHost((A,))
    stack = TcpStack(host, TcpConfig(challenge_ack_limit=100), rng=random.Random(3))

    allowed = []
    for second in range(8):
        allowed.append(sum(stack.challenge_ack_allowed(_fresh_owner(stack), second + 0.5)
                           for _ in range(400)))
    assert all(50 <= n <= 149 for n in allowed), allowed
    assert len(set(allowed)) > 1, allowed


def test_default_has_no_global_budget() -> None:
    """Linux 6.x: tcp_challenge_ack_limit defaults to INT_MAX, per-connection limits only."""
    host = RecordingHost((A,))
    stack = TcpStack(host, TcpConfig(), rng=random.Random(3))

    assert all(stack.challenge_ack_allowed(_fresh_owner(stack), 1.0) for _ in range(5000))
    assert stack.counters["challenge_acks_limited"] == 0
