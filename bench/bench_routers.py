"""Simulation speed: packets per second through a chain of 10 virtual routers.

One UDP sender and one receiver at the ends of a chain of ten routers (static routes,
ideal links): each datagram is one packet forwarded ten times, so "simulated packets" are
link traversals (11 per datagram). Real time today; virtual time will not change it (the
links are ideal: nothing waits).
"""

from __future__ import annotations

import socket
import time

import multisock

ROUTERS = 10


def packets_per_second(datagrams: int) -> float:
    with multisock.Network(seed=1) as net:
        src, dst = net.add_host("src"), net.add_host("dst")
        routers = [net.add_router(f"r{i}") for i in range(ROUTERS)]
        chain = [src, *routers, dst]
        for i in range(len(chain) - 1):
            net.link(chain[i], chain[i + 1], a_addr=f"10.{i}.0.1/30", b_addr=f"10.{i}.0.2/30")
        last = len(chain) - 2
        src.add_route("0.0.0.0/0", via="10.0.0.2")
        dst.add_route("0.0.0.0/0", via=f"10.{last}.0.1")
        for i, router in enumerate(routers, start=1):
            router.add_route(f"10.{last}.0.0/24", via=f"10.{i}.0.2")
            router.add_route("10.0.0.0/24", via=f"10.{i - 1}.0.1")
        rx = dst.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind((f"10.{last}.0.2", 9))
        rx.setblocking(False)
        tx = src.socket(socket.AF_INET, socket.SOCK_DGRAM)
        payload = bytes(64)
        received = 0
        start = time.perf_counter()
        for _ in range(datagrams):
            tx.sendto(payload, (f"10.{last}.0.2", 9))
            try:
                while rx.recv(100):
                    received += 1
            except BlockingIOError:
                pass
        elapsed = time.perf_counter() - start
        assert received == datagrams, (received, datagrams)
        return datagrams * (ROUTERS + 1) / elapsed
