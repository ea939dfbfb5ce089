"""Where one round trip's CPU goes, by layer: ``python bench/profile_layers.py [ROUNDS]``.

Drives a 1-byte TCP ping-pong (TCP_NODELAY) from a single thread - both ends in the same
thread, so the figure is the stack's CPU with no thread hand-off in it - prints the time
per round trip next to the kernel's in the same process, then profiles it with cProfile and
groups the functions' own time by layer (the table in docs/performance.md).
"""

from __future__ import annotations

import collections
import cProfile
import pstats
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import multisock  # noqa: E402
from bench import bench_tcp  # noqa: E402

LAYERS = {
    "TCP engine (connection and its parts, buffers, rtt, congestion, timers, seq, sack)": (
        "tcp/connection.py", "tcp/block.py", "tcp/options.py", "tcp/output.py",
        "tcp/recovery.py", "tcp/timeouts.py", "tcp/arrival.py", "tcp/buffers.py", "tcp/rtt.py", "tcp/congestion.py",
        "tcp/timers.py", "tcp/seq.py", "tcp/sack.py"),
    "TCP demux and emit (tcp/stack.py)": ("tcp/stack.py",),
    "IP layer (ip, routing, addresses, fragments, interface)": (
        "stack/ip.py", "stack/routing.py", "stack/addresses.py", "stack/fragments.py",
        "stack/interface.py"),
    "wire codecs (wire/)": ("wire/ipv4.py", "wire/tcp.py"),
    "driver, host, link (net/)": ("net/driver.py", "net/host.py", "net/link.py"),
    "socket API (api/, socket.py)": ("api/stream.py", "api/core.py", "multisock/socket.py"),
}


def ping_pong(client: socket.socket, server: socket.socket, rounds: int) -> float:
    """µs per round trip, both ends driven from this thread."""
    start = time.perf_counter()
    for _ in range(rounds):
        client.sendall(b"!")
        server.recv(1)
        server.sendall(b"!")
        client.recv(1)
    return (time.perf_counter() - start) / rounds * 1e6


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    net = multisock.Network(seed=1)
    net.link(net.add_host("a", "10.0.0.1/24"), net.add_host("b", "10.0.0.2/24"))
    pairs = {"multisock": bench_tcp._pair_multisock(net), "kernel": bench_tcp._pair_kernel()}
    for _, client, server in pairs.values():
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _, client, server = pairs["multisock"]
    ping_pong(client, server, 500)  # warm up
    for name, (_, c, s) in pairs.items():
        print(f"{name:10} {ping_pong(c, s, rounds):7.1f} µs per round trip (one thread)")
    profile = cProfile.Profile()
    profile.runcall(ping_pong, client, server, rounds)
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    own: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    for (filename, _, _), (_, ncalls, tottime, _, _) in stats.items():
        if filename.endswith("profile_layers.py"):
            continue
        layer = next((name for name, files in LAYERS.items()
                      if any(filename.endswith(f) for f in files)),
                     "builtins" if filename == "~" else "other")
        own[layer] += tottime
        calls[layer] += ncalls
    total = sum(own.values())
    print(f"\n{'layer':70} {'CPU':>6} {'calls/rt':>9}")
    for layer, seconds in own.most_common():
        print(f"{layer:70} {seconds / total:6.0%} {calls[layer] / rounds:9.0f}")
    print(f"{'total':70} {'':6} {sum(calls.values()) / rounds:9.0f}")
    for listener, c, s in pairs.values():
        for sock in (c, s, listener):
            sock.close()
    net.close()


if __name__ == "__main__":
    main()
