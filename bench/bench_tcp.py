"""TCP bulk throughput and 1-byte ping-pong RTT: multisock next to the kernel, same run.

Run: ``python bench/bench_tcp.py [--quick]``. Prints min/median over repetitions and
the ratio multisock/kernel. Bulk: one connection, receiver uses recv_into with a
1 MiB buffer. RTT: TCP_NODELAY, 1 byte each way.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import multisock


def _pair_kernel() -> tuple[Any, Any, Any]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def _pair_multisock(net: Any) -> tuple[Any, Any, Any]:
    a, b = net.hosts["a"], net.hosts["b"]
    listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("10.0.0.2", 0))
    listener.listen()
    client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(("10.0.0.2", listener.getsockname()[1]))
    server, _ = listener.accept()
    return listener, client, server


def _pair_multisock_bridged(net: Any) -> tuple[Any, Any, Any]:
    """A connected pair in bridged fd mode (issue 23): each end's fileno() is one end of a
    kernel TCP pair over loopback the stack relays to, and the Python calls go through it too."""
    from multisock.api.stream import FD_BRIDGED, SO_FD_MODE, SOL_MULTISOCK

    a, b = net.hosts["a"], net.hosts["b"]
    listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)  # accepted sockets inherit it
    listener.bind(("10.0.0.2", 0))
    listener.listen()
    client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(SOL_MULTISOCK, SO_FD_MODE, FD_BRIDGED)
    client.connect(("10.0.0.2", listener.getsockname()[1]))
    server, _ = listener.accept()
    client.fileno(), server.fileno()  # what C code does: the bridge is made here
    return listener, client, server


def bulk(pair: Callable[[], tuple[Any, Any, Any]], size: int) -> float:
    listener, client, server = pair()
    chunk = b"x" * (1 << 20)

    def send() -> None:
        left = size
        while left > 0:
            client.sendall(chunk[: min(left, len(chunk))])
            left -= len(chunk)
        client.shutdown(socket.SHUT_WR)

    buf = bytearray(1 << 20)
    start = time.perf_counter()
    thread = threading.Thread(target=send, daemon=True)  # Ctrl-C mid-transfer still exits
    thread.start()
    got = 0
    while n := server.recv_into(buf):
        got += n
    thread.join()
    elapsed = time.perf_counter() - start
    for s in (client, server, listener):
        s.close()
    return got * 8 / elapsed / 1e9


def rtt(pair: Callable[[], tuple[Any, Any, Any]], rounds: int) -> float:
    listener, client, server = pair()
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo() -> None:
        for _ in range(rounds):
            server.sendall(server.recv(1))

    thread = threading.Thread(target=echo)
    thread.start()
    start = time.perf_counter()
    for _ in range(rounds):
        client.sendall(b"!")
        client.recv(1)
    elapsed = time.perf_counter() - start
    thread.join()
    for s in (client, server, listener):
        s.close()
    return elapsed / rounds * 1e6


def rtt_one_cpu(pair: Callable[[], tuple[Any, Any, Any]], rounds: int) -> float:
    """``rtt`` with both threads held on one CPU (the one this thread runs on).

    On two or more idle CPUs the scheduler decides, run by run, whether the woken end of a
    ping-pong starts on the waker's CPU (cheap) or the other one (a cross-CPU wake-up: tens
    of microseconds on a VM), so the plain RTT is bimodal for both stacks and their ratio
    moves with it. One CPU takes that choice away and leaves each stack's own cost."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})  # this thread; the echo thread inherits it
    try:
        return rtt(pair, rounds)
    finally:
        os.sched_setaffinity(0, before)


def lossy_goodput(size: int, loss: float = 0.01, one_way: str = "10ms") -> tuple[float, float]:
    """Goodput (Mbit/s) at 1 % loss and 20 ms RTT, next to Mathis' MSS/RTT * 1.22/sqrt(p)."""
    with multisock.Network(seed=3) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b, delay=one_way, loss=loss, mtu=1500)
        listener, client, server = _pair_multisock(net)
        mbps = bulk(lambda: (listener, client, server), size) * 1000
        mss = 1448
        rtt_s = 2 * float(one_way.rstrip("ms")) / 1000
        mathis = mss * 8 / rtt_s * 1.22 / loss**0.5 / 1e6
        return mbps, mathis


def main() -> None:
    quick = "--quick" in sys.argv
    reps, size, rounds = (2, 16 << 20, 500) if quick else (5, 256 << 20, 5000)
    net = multisock.Network(seed=1)
    a = net.add_host("a", "10.0.0.1/24")
    b = net.add_host("b", "10.0.0.2/24")
    net.link(a, b)
    rows = []
    for name, unit, fn, arg in (("bulk", "Gbit/s", bulk, size), ("rtt", "µs", rtt, rounds)):
        ours = [fn(lambda: _pair_multisock(net), arg) for _ in range(reps)]
        kernel = [fn(_pair_kernel, arg) for _ in range(reps)]
        rows.append((name, unit, ours, kernel))
    net.close()
    goodput, mathis = lossy_goodput((1 if quick else 32) << 20)  # quick: slow start dominates
    print(f"loss 1 %, RTT 20 ms, MTU 1500: goodput {goodput:.2f} Mbit/s, "
          f"Mathis estimate {mathis:.2f} Mbit/s, ratio {goodput / mathis:.2f}")
    print(f"{'scenario':10} {'multisock min/median':>22} {'kernel min/median':>22} {'ratio':>7}")
    for name, unit, ours, kernel in rows:
        best = max if unit == "Gbit/s" else min
        print(f"{name:10} {best(ours):9.2f}/{statistics.median(ours):<8.2f}{unit:>5} "
              f"{best(kernel):9.2f}/{statistics.median(kernel):<8.2f}{unit:>5} "
              f"{statistics.median(ours) / statistics.median(kernel):7.2f}")


if __name__ == "__main__":
    main()
