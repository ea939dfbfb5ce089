"""The firewall's cost: TCP bulk with conntrack on and 100 rules installed, against the same
transfer with no firewall, alternating in one run (``python -m bench --only security``).

The ruleset is a realistic worst case for the bulk flow: on the receiving host, 98 rules
for other ports come first, then ``accept tcp dport <server> ct state new``, then ``accept ct state
established,related`` - so every data segment is checked against all 100 rules - and the
input policy is drop; the sending host runs a stateful "replies only" input chain. Both
hosts track connections.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import multisock
from bench import bench_tcp

PORT = 5001


def install(net: Any) -> None:
    a, b = net.hosts["a"], net.hosts["b"]
    fw = b.firewall
    for n in range(98):
        fw.add_rule("input", "drop", proto="tcp", dport=10000 + n, src=f"192.0.2.{n}/32")
    fw.add_rule("input", "accept", proto="tcp", dport=PORT, state="new")
    fw.add_rule("input", "accept", state="established,related")
    fw.set_policy("input", "drop")
    a.firewall.add_rule("input", "accept", state="established,related")
    a.firewall.set_policy("input", "drop")


def _pair(net: Any) -> tuple[Any, Any, Any]:
    import socket

    a, b = net.hosts["a"], net.hosts["b"]
    listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("10.0.0.2", PORT))
    listener.listen()
    client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(("10.0.0.2", PORT))
    server, _ = listener.accept()
    return listener, client, server


def _timed(net: Any, size: int) -> tuple[float, float]:
    """(Gbit/s by the wall clock, Gbit per second of this process's CPU time): the second
    barely moves when other processes compete for the cores, the first does."""
    cpu = time.process_time()
    rate = bench_tcp.bulk(lambda: _pair(net), size)
    return rate, size * 8 / (time.process_time() - cpu) / 1e9


def measure(size: int, reps: int, cpu: list[tuple[float, float]] | None = None
            ) -> tuple[list[float], list[float], int]:
    """(Gbit/s without firewall, with conntrack + 100 rules, rules in the input chain);
    ``cpu`` gets (without, with) Gbit per CPU-second for each repetition."""
    plain: list[float] = []
    guarded: list[float] = []
    with multisock.Network(seed=1) as bare, multisock.Network(seed=1) as walled:
        for net in (bare, walled):
            a, b = net.add_host("a", "10.0.0.1/24"), net.add_host("b", "10.0.0.2/24")
            net.link(a, b)
        install(walled)
        for _ in range(reps):
            rate, bare_cpu = _timed(bare, size)
            plain.append(rate)
            rate, walled_cpu = _timed(walled, size)
            guarded.append(rate)
            if cpu is not None:
                cpu.append((bare_cpu, walled_cpu))
        rules = walled.hosts["b"].firewall.rules()
        assert rules[99]["packets"] > 0, "the bulk flow did not reach the last rule"
        assert rules[98]["packets"] == reps  # the SYNs: accepted as new, once each
        checked = len(walled.hosts["b"].firewall.chains["input"])
    return plain, guarded, checked


def main() -> None:
    size = (8 << 20) if "--quick" in sys.argv else (128 << 20)
    cpu: list[tuple[float, float]] = []
    plain, guarded, checked = measure(size, 7, cpu)
    print(f"no firewall            median {statistics.median(plain):.2f} Gbit/s")
    print(f"conntrack + {checked} rules  median {statistics.median(guarded):.2f} Gbit/s")
    print(f"ratio {statistics.median(guarded) / statistics.median(plain):.2f} (wall clock), "
          f"{statistics.median(w for _, w in cpu) / statistics.median(b for b, _ in cpu):.2f}"
          " (per CPU-second)")


if __name__ == "__main__":
    main()
