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
    parser.add_argument("--loss", default="")
    parser.add_argument("--pcap", default="")
    parser.add_argument("--reorder", default="")
    parser.add_argument("--no-offload", action="store_true")
    parser.add_argument("--size", type=int, default=0)
    args = parser.parse_args()

    net = multisock.Network(seed=1)
    host = net.add_host("stack")
    tun = host.attach_tun(args.tun, args.addr, args.peer, mtu=args.mtu,
                          offload=not args.no_offload)
    if args.pcap:
        from multisock.net.pcap import PcapWriter

        writer = PcapWriter(args.pcap)
        tun.capture(writer)
    if args.loss or args.reorder:
        tun.impair(loss=args.loss or 0, reorder=args.reorder or 0, delay="1ms")
    served = None
    if args.mode == "serve-udp":  # bound before READY: the peer sends as soon as it reads it
        family = socket.AF_INET6 if ":" in args.addr[0] else socket.AF_INET
        served = host.socket(family, socket.SOCK_DGRAM)
        served.bind(("", args.port))
    print("READY", flush=True)
    try:
        if args.mode == "ping":
            rtts = [host.ping(args.target, timeout=2) for _ in range(5)]
            print(f"RTT_MS={min(rtts) * 1000:.3f}")
        elif args.mode == "serve-udp":
            assert served is not None
            sock = served
            sock.settimeout(args.seconds)
            for _ in range(3):
                data, source = sock.recvfrom(65535)
                sock.sendto(data[::-1], source)
            print("ECHOED=3")
        elif args.mode == "send-udp":
            family = socket.AF_INET6 if ":" in args.target else socket.AF_INET
            sock = host.socket(family, socket.SOCK_DGRAM)
            sock.settimeout(5)
            message = b"from the stack"
            if args.size:  # a datagram larger than the MTU: fragmented both ways
                message = (message + b" " + bytes(range(97, 123))) * (args.size // 41 + 1)
                message = message[: args.size]
            sock.sendto(message, (args.target, args.port))
            data, _ = sock.recvfrom(65535)
            if args.size:
                print(f"REPLY_MATCHES={data == message.upper()}")
                print(f"REPLY_LEN={len(data)}")
            else:
                print(f"REPLY={data.decode()}")
        elif args.mode == "http-serve":
            import hashlib
            import http.server
            import threading

            from multisock import monkey
            from multisock.runtime import set_default_host

            size = int(args.target or 1 << 20)
            body = bytes(range(256)) * (size // 256)
            quit_asked = threading.Event()

            class Handler(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def log_message(self, *a: object) -> None:
                    pass

                def do_GET(self) -> None:  # noqa: N802
                    if self.path == "/quit":  # the test is done: report and exit
                        self.send_response(204)
                        self.end_headers()
                        quit_asked.set()
                        return
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def do_POST(self) -> None:  # noqa: N802
                    digest = hashlib.sha256()
                    left = int(self.headers["Content-Length"])
                    while left:
                        chunk = self.rfile.read(min(left, 1 << 20))
                        digest.update(chunk)
                        left -= len(chunk)
                    reply = digest.hexdigest().encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)

            set_default_host(host)
            monkey.patch_all()
            server_class = http.server.ThreadingHTTPServer
            bind = ""
            if ":" in args.addr[0]:
                server_class = type("Server6", (server_class,), {"address_family": socket.AF_INET6})
                bind = "::"
            server = server_class((bind, args.port), Handler)
            print(f"SHA256={hashlib.sha256(body).hexdigest()}", flush=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            quit_asked.wait(args.seconds)
            server.shutdown()
            info = [r.get("info") or {} for r in list(host.ip.tcp.history) + host.ip.tcp.connections()]
            opts = [i.get("options") for i in info if i.get("options")]
            print(f"OPTIONS={opts[0] if opts else None}")
        elif args.mode == "http-get":
            import hashlib

            import requests

            from multisock import monkey
            from multisock.runtime import set_default_host

            set_default_host(host)
            monkey.patch_all()
            digest = hashlib.sha256()
            start = time.monotonic()
            with requests.get(f"http://{args.target}:{args.port}/blob", stream=True, timeout=30) as r:
                for chunk in r.iter_content(1 << 20):
                    digest.update(chunk)
            print(f"SHA256={digest.hexdigest()}")
            print(f"SECONDS={time.monotonic() - start:.3f}")
        elif args.mode == "reset":
            sock = host.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(10)
            sock.connect((args.target, args.port))
            got = 0
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        print("OUTCOME=eof")
                        break
                    got += len(chunk)
            except OSError as exc:
                print(f"OUTCOME={type(exc).__name__}:{exc.errno}")
            print(f"GOT={got}")
        elif args.mode == "vanish":
            sock = host.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect((args.target, args.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1500)
            tun.impair(loss=1.0)  # the kernel peer vanishes: nothing gets through any more
            start = time.monotonic()
            try:
                while True:
                    sock.sendall(b"x" * 65536)
            except OSError as exc:
                print(f"OUTCOME={type(exc).__name__}:{exc.errno}")
            print(f"SECONDS={time.monotonic() - start:.2f}")
        elif args.mode == "idle":
            time.sleep(args.seconds)
        else:
            print(f"unknown mode {args.mode}", file=sys.stderr)
            return 2
    finally:
        print(f"TUN_COUNTERS={tun.counters}", flush=True)
        if args.pcap:
            writer.close()
        tun.close()
        net.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
