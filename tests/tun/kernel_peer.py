"""The kernel side of a TUN test: plain stdlib sockets, run inside the namespace."""

from __future__ import annotations

import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping(target: str) -> float:
    """One echo through a kernel raw socket; returns the RTT in seconds."""
    v6 = ":" in target
    if v6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.settimeout(3)
    ident, seq = 0x4D53, 1
    body = b"kernel ping payload"
    header = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq)
    if not v6:
        header = struct.pack("!BBHHH", 8, 0, checksum(header + body), ident, seq)
    start = time.monotonic()
    sock.sendto(header + body, (target, 0))
    while True:
        data = sock.recv(65535)
        icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
        if icmp[0] == (129 if v6 else 0) and struct.unpack("!H", icmp[4:6])[0] == ident:
            assert icmp[8:] == body, "echo reply body differs"
            return time.monotonic() - start


def udp(target: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b"hello stack", (target, port))
        return sock.recv(100).decode()


def udp_echo(bind: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, port))
        sock.settimeout(20)
        print("READY", flush=True)
        data, source = sock.recvfrom(65535)
        sock.sendto(data.upper(), source)


def reset_after(bind: str, port: int, nbytes: int) -> None:
    """Accept one connection, send ``nbytes``, then abort it with a RST (SO_LINGER 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((bind, port))
        listener.listen()
        print("READY", flush=True)
        listener.settimeout(20)
        conn, _ = listener.accept()
        conn.sendall(b"r" * nbytes)
        time.sleep(0.5)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


def sink(bind: str, port: int) -> None:
    """Accept one connection and read until told to stop (the test kills us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((bind, port))
        listener.listen()
        print("READY", flush=True)
        listener.settimeout(20)
        conn, _ = listener.accept()
        while conn.recv(1 << 20):
            pass


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "ping":
        print(f"RTT_MS={ping(sys.argv[2]) * 1000:.3f}")
    elif mode == "udp":
        print(f"REPLY={udp(sys.argv[2], int(sys.argv[3]))}")
    elif mode == "udp-echo":
        udp_echo(sys.argv[2], int(sys.argv[3]))
    elif mode == "reset-after":
        reset_after(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "sink":
        sink(sys.argv[2], int(sys.argv[3]))
