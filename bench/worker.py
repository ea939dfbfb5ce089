"""Scenarios that need a fresh interpreter: ``python -m bench.worker KIND STACK ARGS...``.

HTTP runs ``patch_all()`` (so requests and http.server use multisock unmodified), which
must not leak into the kernel measurement; memory figures need a process whose RSS is
not inflated by earlier scenarios. Each run prints one JSON line on stdout.

* ``http multisock|kernel N REPS`` — requests/s of ``requests.Session`` GETs of a 1 KiB
  body from ``http.server.ThreadingHTTPServer`` (keep-alive, HTTP/1.1), one per rep.
* ``idle multisock|kernel N`` — RSS added by N established idle connections (both
  ends live in this process, as both ends of a kernel loopback connection live in
  the kernel), in bytes per connection.
* ``footprint`` — RSS added by ``import multisock`` + ``patch_all()`` + one host.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident set size now (bytes), from /proc/self/statm."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE


def http(stack: str, n: int, reps: int) -> dict[str, Any]:
    if stack == "multisock":
        from multisock.monkey import patch_all

        patch_all()
    import requests

    from bench import http_server

    server, url = http_server.start()
    body = http_server.BODY
    rates = []
    for _ in range(reps):
        with requests.Session() as session:
            assert len(session.get(url).content) == len(body)  # warm: connection set up
            start = time.perf_counter()
            for _ in range(n):
                response = session.get(url)
                if len(response.content) != len(body):
                    raise RuntimeError("short body")
            rates.append(n / (time.perf_counter() - start))
    server.shutdown()
    server.server_close()
    return {"rates": rates}


def idle(stack: str, n: int) -> dict[str, Any]:
    import socket

    if stack == "multisock":
        import multisock

        net = multisock.Network(seed=1)
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b)
        new, new_client, address = b.socket, a.socket, "10.0.0.2"
    else:
        new = new_client = socket.socket
        address = "127.0.0.1"
    listener = new(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((address, 0))
    listener.listen(128)
    target = (address, listener.getsockname()[1])
    keep = []

    def one() -> None:
        client = new_client(socket.AF_INET, socket.SOCK_STREAM)
        client.connect(target)
        server, _ = listener.accept()
        keep.append((client, server))

    for _ in range(50):  # warm allocator pools and lazily built state
        one()
    gc.collect()
    before = rss()
    for _ in range(n):
        one()
    gc.collect()
    after = rss()
    keep[0][0].sendall(b"ping")  # the connections are alive, not just objects
    assert keep[0][1].recv(4) == b"ping"
    return {"bytes_per_connection": (after - before) / n, "connections": n}


def footprint() -> dict[str, Any]:
    import socket  # noqa: F401 - the baseline every program has already paid
    import threading  # noqa: F401

    gc.collect()
    before = rss()
    start = time.perf_counter()
    import multisock.monkey
    from multisock.runtime import default_host

    multisock.monkey.patch_all()
    default_host()  # one host (the default network's), as a bare socket() would create
    elapsed = time.perf_counter() - start
    gc.collect()
    return {"bytes": rss() - before, "seconds": elapsed,
            "modules": sorted(m for m in sys.modules if m.startswith("multisock"))}


def main() -> None:
    kind, *args = sys.argv[1:]
    if kind == "http":
        result = http(args[0], int(args[1]), int(args[2]))
    elif kind == "idle":
        result = idle(args[0], int(args[1]))
    elif kind == "footprint":
        result = footprint()
    else:
        raise SystemExit(f"unknown worker {kind!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
