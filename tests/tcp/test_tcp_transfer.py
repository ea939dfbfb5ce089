"""Two stacks back to back through an in-memory wire: bulk transfers, compared by sha256,
clean and under seeded loss and reordering, with each congestion control."""

from __future__ import annotations

import hashlib
import random
import socket

import pytest
from tcpnet import B, Wire

from multisock.stack.tcp import TcpConfig, TcpState


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def transfer(w: Wire, size: int, *, both_ways: bool = False, chunk: int = 1 << 16) -> None:
    client, server, _ = w.connect_pair()
    up = _payload(size, 1)
    down = _payload(size // 2, 2) if both_ways else b""
    got_up = bytearray()
    got_down = bytearray()
    sent_up = sent_down = 0
    closed_c = closed_s = False
    eof_s = eof_c = False
    buf = memoryview(bytearray(1 << 18))
    while not (eof_s and (eof_c or not both_ways)):
        progressed = False
        if sent_up < len(up):
            n = client.send(memoryview(up)[sent_up : sent_up + chunk], w.now)
            sent_up += n
            progressed |= n > 0
        elif not closed_c:
            client.shutdown(1, w.now)
            closed_c = True
        if both_ways:
            if sent_down < len(down):
                n = server.send(memoryview(down)[sent_down : sent_down + chunk], w.now)
                sent_down += n
                progressed |= n > 0
            elif not closed_s:
                server.shutdown(1, w.now)
                closed_s = True
        for sock, sink, flag in ((server, got_up, "s"), (client, got_down, "c")):
            try:
                n = sock.recv_into(buf, w.now)
            except BlockingIOError:
                continue
            if n == 0:
                if flag == "s":
                    eof_s = True
                else:
                    eof_c = True
            else:
                sink += buf[:n]
                progressed = True
        if not progressed and not w.step():
            raise AssertionError("transfer stalled")
        assert w.now < 300, "transfer too slow"
    assert hashlib.sha256(got_up).digest() == hashlib.sha256(up).digest()
    if both_ways:
        assert hashlib.sha256(got_down).digest() == hashlib.sha256(down).digest()
    assert w.a.counters["internal_errors"] == 0 and w.b.counters["internal_errors"] == 0
    if not both_ways:
        server.close(w.now)
        w.run_until(
            lambda: (
                client.state in (TcpState.TIME_WAIT, TcpState.CLOSED)
                and server.state is TcpState.CLOSED
            )
        )


def test_clean_transfer_large_mtu() -> None:
    w = Wire(mtu=65535, delay=0.0001)
    transfer(w, 8 << 20, chunk=1 << 20)


def test_clean_transfer_ethernet_mtu_both_ways() -> None:
    w = Wire(mtu=1500, delay=0.002, rate=100e6)
    transfer(w, 2 << 20, both_ways=True)


@pytest.mark.parametrize("cc", ["cubic", "reno"])
@pytest.mark.parametrize("seed", [1, 2])
def test_transfer_under_loss_and_reordering(cc: str, seed: int) -> None:
    w = Wire(
        TcpConfig(congestion=cc),
        mtu=1500,
        delay=0.005,
        loss=0.05,
        reorder=0.05,
        seed=seed,
        rate=12.5e6,
    )
    transfer(w, 2 << 20)
    assert w.dropped > 50


def test_transfer_under_loss_without_sack_or_timestamps() -> None:
    w = Wire(
        TcpConfig(sack=False, timestamps=False),
        mtu=1500,
        delay=0.005,
        loss=0.05,
        reorder=0.05,
        seed=5,
        rate=12.5e6,
    )
    transfer(w, 1 << 20, both_ways=True)


def test_transfer_with_small_buffers_exercises_zero_windows() -> None:
    cfg = TcpConfig(rcvbuf=8192, sndbuf=8192)
    w = Wire(cfg, mtu=1500, delay=0.001, loss=0.02, seed=9)
    transfer(w, 256 << 10, chunk=3000)


def test_heavy_loss_still_completes() -> None:
    w = Wire(mtu=1500, delay=0.002, loss=0.15, reorder=0.1, seed=11)
    transfer(w, 256 << 10)


def test_many_parallel_connections_share_the_timer_heap() -> None:
    w = Wire(mtu=1500, delay=0.003, loss=0.03, reorder=0.03, seed=21, rate=50e6)
    listener = w.b.socket(socket.AF_INET)
    listener.bind(B, 443)
    listener.listen(128, w.now)
    clients = []
    for _ in range(30):
        c = w.a.socket(socket.AF_INET)
        c.connect(B, 443, w.now)
        clients.append(c)
    servers: list = []
    payloads = [_payload(48 << 10, i) for i in range(30)]
    sent = [0] * 30
    received: dict[int, bytearray] = {}
    buf = memoryview(bytearray(1 << 16))
    while any(len(received.get(i, b"")) < len(payloads[i]) for i in range(30)):
        child = listener.accept()
        while child is not None:
            servers.append(child)
            child = listener.accept()
        for i, c in enumerate(clients):
            if c.state is TcpState.ESTABLISHED and sent[i] < len(payloads[i]):
                sent[i] += c.send(memoryview(payloads[i])[sent[i] :], w.now)
                if sent[i] == len(payloads[i]):
                    c.close(w.now)
        for srv in servers:
            assert srv.remote is not None
            idx = next(i for i, c in enumerate(clients) if c.local == srv.remote)
            try:
                n = srv.recv_into(buf, w.now)
            except BlockingIOError:
                continue
            received.setdefault(idx, bytearray()).extend(buf[:n])
        if not w.step():
            break
        assert w.now < 120
    for i in range(30):
        assert hashlib.sha256(received[i]).digest() == hashlib.sha256(payloads[i]).digest()
    assert w.a.counters["internal_errors"] == 0 and w.b.counters["internal_errors"] == 0
