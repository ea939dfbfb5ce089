"""The host gateway: bulk and connection rate between a kernel peer and a multisock socket
through ``multisock.gateway`` (the kernel loopback, as 10.0.2.2 from the virtual LAN).

Pairs have the shape ``bench_tcp.bulk`` takes, (listener, sender, receiver), so the same
measuring code runs over the gateway and kernel <-> kernel in the same run.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import multisock


def network() -> tuple[Any, Any]:
    """A network with a gateway and one attached host (ideal link); (net, host)."""
    net = multisock.Network(seed=1)
    gateway = net.add_gateway()
    app = net.add_host("app")
    gateway.attach(app)
    return net, app


def _kernel_listener() -> Any:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    return listener


def pair_to_kernel(app: Any) -> tuple[Any, Any, Any]:
    """multisock socket (sender) -> gateway -> kernel socket (receiver)."""
    listener = _kernel_listener()
    client = app.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(("10.0.2.2", listener.getsockname()[1]))
    server, _ = listener.accept()
    return listener, client, server


def pair_from_kernel(app: Any) -> tuple[Any, Any, Any]:
    """kernel socket (sender) -> gateway -> multisock socket (receiver)."""
    listener, virtual, kernel = pair_to_kernel(app)
    return listener, kernel, virtual


def connection_rate(app: Any | None, n: int) -> float:
    """connect + accept + close through the gateway (``app``) or kernel <-> kernel (None)."""
    listener = _kernel_listener()
    port = listener.getsockname()[1]
    start = time.perf_counter()
    for _ in range(n):
        if app is None:
            client = socket.socket()
            client.connect(("127.0.0.1", port))
        else:
            client = app.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.connect(("10.0.2.2", port))
        server, _ = listener.accept()
        client.close()
        server.close()
    elapsed = time.perf_counter() - start
    listener.close()
    return n / elapsed
