"""ping over multisock's stack: ICMP echo with the usual output and statistics.

Run: ``python -m multisock run examples/ping.py 127.0.0.1`` (the program's own ``socket``
module is multisock's, so the echo goes through the userspace stack), or plainly
``python examples/ping.py`` to ping across a small virtual network built here (two hosts
over a link with ``--delay`` and ``--loss``). Options: ``-c COUNT``, ``-i INTERVAL``,
``-s SIZE``, ``-W TIMEOUT``. Uses an unprivileged ICMP socket (``SOCK_DGRAM``,
``IPPROTO_ICMP``), like Linux's ping, and ``IP_RECVTTL`` for the ttl column.
"""

from __future__ import annotations

import argparse
import math
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)


def ping(make_socket: Callable[[], Any], target: str, count: int, interval: float,
         size: int, timeout: float, out: Any = sys.stdout) -> dict[str, Any]:
    """Send ``count`` echoes, print a line per reply and the summary; the figures back."""
    address = socket.getaddrinfo(target, None, socket.AF_INET)[0][4][0] \
        if not target.replace(".", "").isdigit() else target
    print(f"PING {target} ({address}) {size}({size + 28}) bytes of data.", file=out)
    sock = make_socket()
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    rtts: list[float] = []
    sent = 0
    started = time.monotonic()
    payload = bytes(range(256)) * (size // 256 + 1)
    for seq in range(1, count + 1):
        message = struct.pack("!BBHHH", 8, 0, 0, 0, seq) + payload[:size]
        stamp = time.monotonic()
        sock.sendto(message, (address, 0))
        sent += 1
        deadline = stamp + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, ancillary, _flags, peer = sock.recvmsg(65535, socket.CMSG_SPACE(4))
            except TimeoutError:
                break
            if len(data) < 8 or data[0] != 0 or struct.unpack_from("!H", data, 6)[0] != seq:
                continue  # not the reply to this request
            rtt = (time.monotonic() - stamp) * 1000
            rtts.append(rtt)
            ttl = next((struct.unpack("i", value[:4])[0] for level, kind, value in ancillary
                        if level == socket.IPPROTO_IP and kind == socket.IP_TTL), None)
            ttl_text = f" ttl={ttl}" if ttl is not None else ""
            print(f"{len(data)} bytes from {peer[0]}: icmp_seq={seq}{ttl_text} "
                  f"time={rtt:.3f} ms", file=out)
            break
        if seq < count:
            time.sleep(max(0.0, interval - (time.monotonic() - stamp)))
    sock.close()
    elapsed = (time.monotonic() - started) * 1000
    received = len(rtts)
    loss = 100.0 * (sent - received) / sent if sent else 0.0
    print(f"\n--- {target} ping statistics ---", file=out)
    print(f"{sent} packets transmitted, {received} received, {loss:.0f}% packet loss, "
          f"time {elapsed:.0f}ms", file=out)
    if rtts:
        mean = sum(rtts) / received
        mdev = math.sqrt(sum((r - mean) ** 2 for r in rtts) / received)
        print(f"rtt min/avg/max/mdev = {min(rtts):.3f}/{mean:.3f}/{max(rtts):.3f}/"
              f"{mdev:.3f} ms", file=out)
    return {"sent": sent, "received": received, "loss": loss, "rtts": rtts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", help="address or name (default: the demo peer)")
    parser.add_argument("-c", dest="count", type=int, default=4)
    parser.add_argument("-i", dest="interval", type=float, default=0.2)
    parser.add_argument("-s", dest="size", type=int, default=56)
    parser.add_argument("-W", dest="timeout", type=float, default=1.0)
    parser.add_argument("--delay", default="5ms", help="demo network: one-way delay")
    parser.add_argument("--loss", default="0%", help="demo network: loss probability")
    args = parser.parse_args(argv)

    def kind() -> Any:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)

    if socket.socket.__module__ == "multisock.socket":  # under ``multisock run``
        figures = ping(kind, args.target or "127.0.0.1", args.count, args.interval,
                       args.size, args.timeout)
        return 0 if figures["received"] else 1
    import multisock
    from multisock.net.units import parse_duration, parse_probability

    with multisock.Network(seed=1) as net:
        here = net.add_host("here", "10.0.0.1/24")
        there = net.add_host("there", "10.0.0.2/24")
        net.link(here, there, delay=parse_duration(args.delay),
                 loss=parse_probability(args.loss))
        figures = ping(lambda: here.socket(socket.AF_INET, socket.SOCK_DGRAM,
                                           socket.IPPROTO_ICMP),
                       args.target or "10.0.0.2", args.count, args.interval, args.size,
                       args.timeout)
    return 0 if figures["received"] else 1


if __name__ == "__main__":
    sys.exit(main())
