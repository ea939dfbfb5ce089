"""End-to-end TCP over the in-process network under every impairment, sha256-checked.

Each case prints its seed on failure (in the assertion message). Sizes are a few
MiB in the default suite; ``MULTISOCK_FULL_TRANSFERS=1`` runs the issue's 50 MiB.
"""

from __future__ import annotations

import socket
import threading

import pytest

import multisock
from tests.transfer.helpers import FULL, transfer

MIB = 1 << 20
SIZE = 50 * MIB if FULL else 4 * MIB

CASES = {
    "clean": dict(),
    "clean-mtu1500": dict(mtu=1500),
    "loss-1%": dict(loss=0.01, delay="1ms", mtu=1500),
    "loss-5%": dict(loss=0.05, delay="1ms", mtu=1500),
    "loss-10%": dict(loss=0.10, delay="1ms", mtu=1500),
    "reorder-5%": dict(reorder=0.05, delay="2ms", mtu=1500),
    "duplicate-5%": dict(duplicate=0.05, mtu=1500),
    "corrupt-1%": dict(corrupt=0.01, mtu=1500),
    "jitter": dict(delay="3ms", jitter="2ms", mtu=1500),
    "10mbit-small-queue": dict(rate="10mbit", queue=20, mtu=1500),
}
SIZES = {"loss-10%": SIZE // 4, "10mbit-small-queue": SIZE // 8}


@pytest.mark.parametrize("name", list(CASES))
def test_bulk_both_directions(name: str) -> None:
    seed = 1000 + list(CASES).index(name)
    result = transfer(SIZES.get(name, SIZE), seed, **CASES[name])
    assert result.a_to_b and result.b_to_a, f"seed {seed}: data differs ({result.stats})"


def test_ipv6_bulk() -> None:
    result = transfer(SIZE, 77, family=socket.AF_INET6, loss=0.01, mtu=1500)
    assert result.a_to_b and result.b_to_a


def test_link_down_for_a_while_then_back() -> None:
    """A partition shorter than the retry budget: the transfer stalls, then completes."""
    with multisock.Network(seed=5) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        link = net.link(a, b, mtu=1500, delay="1ms")
        listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # keep data in flight
        listener.bind(("10.0.0.2", 80))
        listener.listen()
        client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        client.connect(("10.0.0.2", 80))
        server, _ = listener.accept()
        payload = bytes(range(256)) * (4 * 4096)  # 4 MiB
        received = bytearray()
        partitioned = threading.Event()

        def reader() -> None:
            server.settimeout(30)
            while True:
                chunk = server.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)
                if len(received) > len(payload) // 4 and not partitioned.is_set():
                    partitioned.set()
                    link.down()
                    threading.Timer(3.0 if FULL else 1.0, link.up).start()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        client.sendall(payload)
        client.shutdown(socket.SHUT_WR)
        t.join(60)
        assert not t.is_alive()
        assert bytes(received) == payload
        assert a.ip.tcp.counters["rto_expired"] >= 1
        for s in (client, server, listener):
            s.close()


def test_hundred_parallel_connections() -> None:
    with multisock.Network(seed=9) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b, mtu=1500, loss=0.005)
        listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("10.0.0.2", 80))
        listener.listen(128)
        n = 100
        size = 256 * 1024
        results: dict[int, bool] = {}

        def serve() -> None:
            for _ in range(n):
                conn, _ = listener.accept()
                threading.Thread(target=echo, args=(conn,), daemon=True).start()

        def echo(conn: socket.socket) -> None:
            conn.settimeout(60)
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
            conn.close()

        def client(i: int) -> None:
            s = a.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(60)
            s.connect(("10.0.0.2", 80))
            data = bytes([i]) * size
            sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
            sender.start()
            got = bytearray()
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got.extend(chunk)
            sender.join()
            results[i] = bytes(got) == data
            s.close()

        threading.Thread(target=serve, daemon=True).start()
        clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(120)
        assert len(results) == n and all(results.values())
