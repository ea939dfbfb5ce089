"""The kernel's ends of the loss rows, run inside a bench namespace (``bench/bench_loss.py``).

``python -m bench.loss_peer recv ADDR PORT [CC]``: listens, prints ``READY``, then for each
connection reads to EOF and prints ``BYTES SECONDS`` (from accept to EOF, as
``bench_tcp.bulk`` times multisock's side from the established pair to EOF).

``python -m bench.loss_peer send ADDR PORT CC``: for each line ``N`` on stdin, connects with
congestion control CC (``TCP_CONGESTION``; root may choose one outside the allowed list), sends
N bytes in 1 MiB ``sendall`` calls, shuts down its side, waits for the receiver's close and
prints ``DONE``.

Plain kernel sockets only, nothing of multisock: these are the kernel's TCP, driven the way
``bench_tcp.bulk`` drives multisock's.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import sys
import time

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Killed when the bench process goes, however it goes (even SIGKILL): a peer left
    behind would keep its namespace alive."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def receive(addr: str, port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen()
    print("READY", flush=True)
    buf = bytearray(1 << 20)
    while True:
        conn, _ = listener.accept()
        start = time.perf_counter()
        got = 0
        while n := conn.recv_into(buf):
            got += n
        elapsed = time.perf_counter() - start
        conn.close()
        print(got, elapsed, flush=True)


def send(addr: str, port: int, congestion: str) -> None:
    chunk = b"x" * (1 << 20)
    for line in sys.stdin:
        left = int(line)
        with socket.socket() as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, congestion.encode())
            conn.connect((addr, port))
            while left > 0:
                conn.sendall(chunk[: min(left, len(chunk))])
                left -= len(chunk)
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)  # the receiver's close: everything was read
        print("DONE", flush=True)


if __name__ == "__main__":
    die_with_parent()
    role, host, number = sys.argv[1:4]
    if role == "recv":
        receive(host, int(number))
    else:
        send(host, int(number), sys.argv[4])
