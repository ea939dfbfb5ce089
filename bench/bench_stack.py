"""Per-packet cost of the stack: one UDP datagram from host to host, and ping.

Run: ``python bench/bench_stack.py``. Prints min/median µs per datagram over
repetitions, next to the kernel's loopback UDP measured in the same run.
"""

from __future__ import annotations

import socket
import statistics
import time

import multisock


def _udp_round(sender: object, receiver: object, dst: tuple[str, int], n: int, size: int) -> float:
    payload = b"x" * size
    start = time.perf_counter_ns()
    for _ in range(n):
        sender.sendto(payload, dst)  # type: ignore[attr-defined]
        receiver.recv(65536)  # type: ignore[attr-defined]
    return (time.perf_counter_ns() - start) / n / 1000


def measure(reps: int = 7, n: int = 2000, size: int = 1024) -> dict[str, list[float]]:
    """Every repetition's µs per datagram (per echo), by row name."""
    out: dict[str, list[float]] = {}
    with multisock.Network(seed=1) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b)
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("10.0.0.2", 9000))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        runs = [_udp_round(tx, rx, ("10.0.0.2", 9000), n, size) for _ in range(reps)]
        out["multisock UDP 1 KiB a->b (µs/datagram)"] = runs
        pings = []
        for _ in range(reps):
            start = time.perf_counter_ns()
            for _ in range(200):
                a.ping("10.0.0.2")
            pings.append((time.perf_counter_ns() - start) / 200 / 1000)
        out["multisock ping a->b (µs/echo)"] = pings
    krx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    krx.bind(("127.0.0.1", 0))
    ktx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    kernel = [_udp_round(ktx, krx, krx.getsockname(), n, size) for _ in range(reps)]
    out["kernel UDP 1 KiB loopback (µs/datagram)"] = kernel
    krx.close()
    ktx.close()
    return out


def main() -> None:
    results = measure()
    for name, runs in results.items():
        print(f"{name:45s} min {min(runs):8.2f}  median {statistics.median(runs):8.2f}")
    ours = statistics.median(results["multisock UDP 1 KiB a->b (µs/datagram)"])
    kernel = statistics.median(results["kernel UDP 1 KiB loopback (µs/datagram)"])
    print(f"{'ratio multisock/kernel (median)':45s} {ours / kernel:8.2f}x")


if __name__ == "__main__":
    main()
