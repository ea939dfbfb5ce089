"""The Network API with impairments: how goodput falls as loss rises.

Run: ``python examples/lossy_link.py``. Two hosts, a 5 ms link at MTU 1500; for each
loss rate, 2 MiB over TCP, sha256-checked, with the sender's retransmission count.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import multisock


def transfer(loss: float, size: int = 2 << 20) -> tuple[float, int, bool]:
    with multisock.Network(seed=42) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b, delay="5ms", loss=loss, mtu=1500)
        listener = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("10.0.0.2", 9000))
        listener.listen()
        data = os.urandom(size)
        digest = hashlib.sha256()

        def receive() -> None:
            conn, _ = listener.accept()
            while chunk := conn.recv(1 << 20):
                digest.update(chunk)
            conn.close()

        receiver = threading.Thread(target=receive)
        receiver.start()
        client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        start = time.monotonic()
        client.connect(("10.0.0.2", 9000))
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        receiver.join()
        elapsed = time.monotonic() - start
        retransmits = int(a.ip.tcp.counters.get("retransmits", 0))
        client.close()
        listener.close()
        return size * 8 / elapsed / 1e6, retransmits, digest.digest() == hashlib.sha256(data).digest()


if __name__ == "__main__":
    print(f"{'loss':>6} {'Mbit/s':>8} {'retransmits':>12} intact")
    for loss in (0.0, 0.01, 0.02, 0.05):
        mbps, retransmits, ok = transfer(loss)
        print(f"{loss:6.0%} {mbps:8.1f} {retransmits:12d} {ok}")
