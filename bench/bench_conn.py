"""Connection rate, UDP datagram rates and many parallel bulk flows.

Each function takes a ``Side`` per end — a ``factory(family, type)`` making sockets
plus the address it lives at — so the same code measures multisock (``host.socket`` on
two hosts of the in-process network) and the kernel (``socket.socket`` on loopback) in
the same run. The first side is the server (listener, receiver), the second the client.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

Factory = Callable[[int, int], Any]
Side = tuple[Factory, str]


def connection_rate(server_side: Side, client_side: Side, n: int) -> float:
    """connect + accept + close, ``n`` times in one thread: connections per second.

    The client closes first (so TIME_WAIT stays on the client, as in most benchmarks).
    """
    new, address = server_side
    new_client = client_side[0]
    listener = new(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((address, 0))
    listener.listen(128)
    target = (address, listener.getsockname()[1])
    start = time.perf_counter()
    for _ in range(n):
        client = new_client(socket.AF_INET, socket.SOCK_STREAM)
        client.connect(target)
        server, _ = listener.accept()
        client.close()
        server.close()
    elapsed = time.perf_counter() - start
    listener.close()
    return n / elapsed


def udp_one_way(server_side: Side, client_side: Side, n: int, size: int = 1024) -> float:
    """Datagrams per second received, a sender thread blasting ``n`` datagrams.

    UDP may drop when the receiver falls behind (both stacks do); the figure counts what
    arrived, over the time from the first send to the last datagram received.
    """
    new, address = server_side
    new_client = client_side[0]
    rx = new(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((address, 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.settimeout(0.5)
    tx = new_client(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    payload = b"x" * size

    def blast() -> None:
        for _ in range(n):
            tx.send(payload)

    got = 0
    last = start = time.perf_counter()
    thread = threading.Thread(target=blast)
    thread.start()
    try:
        while got < n:
            rx.recv(65536)
            got += 1
            last = time.perf_counter()
    except TimeoutError:
        pass  # the rest was dropped
    thread.join()
    rx.close()
    tx.close()
    return got / (last - start)


def udp_echo(server_side: Side, client_side: Side, n: int, size: int = 1024) -> float:
    """Round trips per second: client sends, a server thread echoes, client receives."""
    new, address = server_side
    new_client = client_side[0]
    srv = new(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((address, 0))
    cli = new_client(socket.AF_INET, socket.SOCK_DGRAM)
    cli.connect(srv.getsockname())
    payload = b"x" * size

    def echo() -> None:
        for _ in range(n):
            data, peer = srv.recvfrom(65536)
            srv.sendto(data, peer)

    thread = threading.Thread(target=echo)
    thread.start()
    start = time.perf_counter()
    for _ in range(n):
        cli.send(payload)
        cli.recv(65536)
    elapsed = time.perf_counter() - start
    thread.join()
    srv.close()
    cli.close()
    return n / elapsed


def parallel_bulk(server_side: Side, client_side: Side, flows: int, seconds: float,
                  chunk: int = 65536) -> tuple[float, float]:
    """``flows`` connections sending at once for ``seconds``: (aggregate Gbit/s, Jain index).

    One sender and one receiver thread per flow. Jain's index is
    (sum x)^2 / (n * sum x^2) over the bytes each flow delivered: 1.0 is perfectly fair.
    """
    new, address = server_side
    new_client = client_side[0]
    listener = new(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((address, 0))
    listener.listen(flows)
    target = (address, listener.getsockname()[1])
    pairs = []
    for _ in range(flows):
        client = new_client(socket.AF_INET, socket.SOCK_STREAM)
        client.connect(target)
        server, _ = listener.accept()
        pairs.append((client, server))
    stop = threading.Event()
    go = threading.Barrier(2 * flows + 1)
    received = [0] * flows
    data = b"x" * chunk

    def send(sock: Any) -> None:
        go.wait()
        while not stop.is_set():
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)

    def receive(i: int, sock: Any) -> None:
        buf = bytearray(1 << 20)
        go.wait()
        total = 0
        while not stop.is_set():
            n = sock.recv_into(buf)
            if not n:
                break
            total += n
        received[i] = total  # bytes delivered inside the window
        while sock.recv_into(buf):
            pass

    threads = [threading.Thread(target=send, args=(c,)) for c, _ in pairs]
    threads += [threading.Thread(target=receive, args=(i, s)) for i, (_, s) in enumerate(pairs)]
    for t in threads:
        t.start()
    go.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - start
    for t in threads:
        t.join()
    for c, s in pairs:
        c.close()
        s.close()
    listener.close()
    total = sum(received)
    jain = total * total / (flows * sum(x * x for x in received)) if total else 0.0
    return total * 8 / elapsed / 1e9, jain
