"""The multisock side of a TUN test, run inside the test's namespace.

``python stack_agent.py MODE --tun NAME --addr CIDR --peer IP [...]``: attaches a
virtual host to the TUN device, prints READY, performs MODE, prints results as
``KEY=VALUE`` lines and exits 0 on success.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

import multisock


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--tun", default="msk0")
    parser.add_argument("--addr", action="append", required=True)
    parser.add_argument("--peer", action="append", required=True)
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--target", default="")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()

    net = multisock.Network(seed=1)
    host = net.add_host("stack")
    tun = host.attach_tun(args.tun, args.addr, args.peer, mtu=args.mtu)
    print("READY", flush=True)
    try:
        if args.mode == "ping":
            rtts = [host.ping(args.target, timeout=2) for _ in range(5)]
            print(f"RTT_MS={min(rtts) * 1000:.3f}")
        elif args.mode == "serve-udp":
            family = socket.AF_INET6 if ":" in args.addr[0] else socket.AF_INET
            sock = host.socket(family, socket.SOCK_DGRAM)
            sock.bind(("", args.port))
            sock.settimeout(args.seconds)
            for _ in range(3):
                data, source = sock.recvfrom(65535)
                sock.sendto(data[::-1], source)
            print("ECHOED=3")
        elif args.mode == "send-udp":
            family = socket.AF_INET6 if ":" in args.target else socket.AF_INET
            sock = host.socket(family, socket.SOCK_DGRAM)
            sock.settimeout(5)
            sock.sendto(b"from the stack", (args.target, args.port))
            data, _ = sock.recvfrom(65535)
            print(f"REPLY={data.decode()}")
        elif args.mode == "idle":
            time.sleep(args.seconds)
        else:
            print(f"unknown mode {args.mode}", file=sys.stderr)
            return 2
    finally:
        print(f"TUN_COUNTERS={tun.counters}", flush=True)
        tun.close()
        net.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
