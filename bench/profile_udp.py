"""Where one UDP datagram's CPU goes: ``python bench/profile_udp.py [N] [--no-profile]``.

Sends ``N`` 1 KiB datagrams on a connected socket and receives each one, both ends in this
thread (no thread hand-off), prints µs per datagram next to the kernel's loopback in the same
process, then (pure build) profiles it with cProfile: the functions with the most own time and
their calls per datagram. In the compiled build the compiled functions do not show in the
profile: the figure per datagram is what to compare.
"""

from __future__ import annotations

import cProfile
import pstats
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import multisock  # noqa: E402


def send_recv(tx: Any, rx: Any, n: int, size: int = 1024) -> float:
    """µs per datagram: ``send`` then ``recv``, both in this thread."""
    payload = b"x" * size
    start = time.process_time()
    for _ in range(n):
        tx.send(payload)
        rx.recv(65536)
    return (time.process_time() - start) / n * 1e6


def batch(tx: Any, rx: Any, n: int, size: int = 1024, burst: int = 64) -> float:
    """µs per datagram: ``burst`` sends, then ``burst`` receives (a queue that holds many)."""
    payload = b"x" * size
    start = time.process_time()
    for _ in range(n // burst):
        for _ in range(burst):
            tx.send(payload)
        for _ in range(burst):
            rx.recv(65536)
    return (time.process_time() - start) / (n // burst * burst) * 1e6


def pair(new_rx: Any, new_tx: Any, address: str) -> tuple[Any, Any]:
    rx = new_rx(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((address, 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.settimeout(0.5)
    tx = new_tx(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    return tx, rx


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 20000
    net = multisock.Network(seed=1)
    a, b = net.add_host("a", "10.0.0.1/24"), net.add_host("b", "10.0.0.2/24")
    net.link(a, b)
    pairs = {"multisock": pair(b.socket, a.socket, "10.0.0.2"),
             "kernel": pair(socket.socket, socket.socket, "127.0.0.1")}
    tx, rx = pairs["multisock"]
    send_recv(tx, rx, 500)  # warm up
    print(f"build: {'compiled' if multisock.COMPILED else 'pure'}")
    for name, (t, r) in pairs.items():
        one = min(send_recv(t, r, n) for _ in range(3))
        many = min(batch(t, r, n) for _ in range(3))
        print(f"{name:10} {one:7.2f} µs send+recv   {many:7.2f} µs in bursts of 64")
    if "--no-profile" not in sys.argv and not multisock.COMPILED:
        profile = cProfile.Profile()
        profile.runcall(send_recv, tx, rx, n)
        stats = pstats.Stats(profile)
        rows = []
        for (filename, line, func), (_, ncalls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            rows.append((tottime, ncalls, f"{Path(filename).name}:{line}({func})"))
        rows.sort(reverse=True)
        total = sum(r[0] for r in rows)
        print(f"\n{'function':60} {'own':>5} {'calls/dgram':>11}")
        for tottime, ncalls, name in rows[:30]:
            print(f"{name[:60]:60} {tottime / total:5.0%} {ncalls / n:11.2f}")
        print(f"{'total calls per datagram':60} {'':5} {sum(r[1] for r in rows) / n:11.1f}")
    for t, r in pairs.values():
        t.close()
        r.close()
    net.close()


if __name__ == "__main__":
    main()
