"""Bulk transfers over the in-process network, checked byte for byte."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import multisock

# the default suite moves a few MiB per case; MULTISOCK_FULL_TRANSFERS=1 moves the 50 MiB
FULL = os.environ.get("MULTISOCK_FULL_TRANSFERS") == "1"


@dataclass
class Result:
    seconds: float
    a_to_b: bool
    b_to_a: bool
    stats: dict[str, Any]


def _pump(sock: Any, data: bytes, errors: list[BaseException]) -> None:
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def _drain(sock: Any, out: list[str], errors: list[BaseException]) -> None:
    try:
        digest = hashlib.sha256()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while True:
            n = sock.recv_into(buf)
            if not n:
                break
            digest.update(view[:n])
        out.append(digest.hexdigest())
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)


def transfer(size: int, seed: int, *, both: bool = True, timeout: float = 120,
             mtu: int = 65535, family: int = socket.AF_INET, **impairments: Any) -> Result:
    """``size`` random bytes a->b (and b->a when ``both``) at once, over one connection."""
    with multisock.Network(seed=seed) as net:
        a = net.add_host("a", "10.0.0.1/24", "fd00::1/64")
        b = net.add_host("b", "10.0.0.2/24", "fd00::2/64")
        link = net.link(a, b, mtu=mtu, **impairments)
        server_addr = "10.0.0.2" if family == socket.AF_INET else "fd00::2"
        listener = b.socket(family, socket.SOCK_STREAM)
        listener.bind((server_addr, 5001))
        listener.listen()
        client = a.socket(family, socket.SOCK_STREAM)
        client.settimeout(timeout)
        client.connect((server_addr, 5001))
        server, _ = listener.accept()
        server.settimeout(timeout)
        rng = __import__("random").Random(seed)
        data_ab = rng.randbytes(size)
        data_ba = rng.randbytes(size) if both else b""
        errors: list[BaseException] = []
        got_b: list[str] = []
        got_a: list[str] = []
        threads = [
            threading.Thread(target=_pump, args=(client, data_ab, errors)),
            threading.Thread(target=_drain, args=(server, got_b, errors)),
        ]
        if both:
            threads += [
                threading.Thread(target=_pump, args=(server, data_ba, errors)),
                threading.Thread(target=_drain, args=(client, got_a, errors)),
            ]
        else:
            server.shutdown(socket.SHUT_WR)
            threads.append(threading.Thread(target=_drain, args=(client, got_a, errors)))
        start = time.monotonic()
        for t in threads:
            t.daemon = True
            t.start()
        for t in threads:
            t.join(timeout + 10)
            if t.is_alive():
                raise AssertionError(f"seed {seed}: transfer hung ({link.stats()})")
        elapsed = time.monotonic() - start
        if errors:
            raise AssertionError(f"seed {seed}: {errors!r}") from errors[0]
        info = client._sock.tcb.info()
        stats = {"link": link.stats(), "client": info, "tcp_a": dict(a.ip.tcp.counters),
                 "tcp_b": dict(b.ip.tcp.counters)}
        for s in (client, server, listener):
            s.close()
        ok_ab = got_b == [hashlib.sha256(data_ab).hexdigest()]
        ok_ba = got_a == [hashlib.sha256(data_ba).hexdigest()]
        return Result(elapsed, ok_ab, ok_ba, stats)
