"""``python -m multisock demo``: the main job in one minute.

Two virtual hosts, a delayed and lossy link between them, the stdlib's
``http.server`` serving on one and a client on the other — unmodified code, all
bytes through multisock's TCP/IP stack. Prints the response, the connection
statistics and where the pcap went.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import os
import socket as kernel_socket
import sys
import tempfile
import threading
import time
from typing import Any

from multisock.net.network import Network

PAGE = ("<html><body><h1>Hello from beta, over multisock</h1>" + "<p>lorem ipsum</p>" * 2000 +
        "</body></html>").encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's spelling
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"  [server on beta] {self.address_string()} {format % args}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m multisock demo")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--loss", default="2%")
    parser.add_argument("--delay", default="10ms")
    parser.add_argument("--pcap", default=os.path.join(tempfile.gettempdir(), "multisock-demo.pcap"))
    args = parser.parse_args(argv)

    from multisock import monkey

    net = Network(seed=args.seed)
    alpha = net.add_host("alpha", "10.0.0.1/24", "fd00::1/64")
    beta = net.add_host("beta", "10.0.0.2/24", "fd00::2/64")
    net.link(alpha, beta, delay=args.delay, jitter="1ms", loss=args.loss, mtu=1500)
    writer = net.capture(args.pcap)
    print(f"network seed={net.seed}: alpha 10.0.0.1 <-> beta 10.0.0.2, "
          f"delay {args.delay}, loss {args.loss}, MTU 1500")

    from multisock.runtime import use_host

    with monkey.patched():
        with use_host(beta):
            server = http.server.ThreadingHTTPServer(("10.0.0.2", 8080), _Handler)
        serving = threading.Thread(target=_serve_on, args=(beta, server), daemon=True)
        serving.start()
        with use_host(alpha):
            import requests

            started = time.monotonic()
            response = requests.get("http://beta:8080/", timeout=30)
            elapsed = time.monotonic() - started
            kernel_probe = _kernel_cannot_reach()
        server.shutdown()
        server.server_close()

    print(f"\nGET http://beta:8080/ -> {response.status_code} {response.reason}, "
          f"{len(response.content)} bytes in {elapsed * 1000:.0f} ms "
          f"(sha256 {hashlib.sha256(response.content).hexdigest()[:16]}..., "
          f"{'intact' if response.content == PAGE else 'CORRUPTED'})")
    print(f"  {response.text[:60]}...")
    print(f"  kernel sockets could not reach the server: {kernel_probe}")
    print("\nconnections on alpha:")
    for conn in alpha.ip.tcp.connections():
        print("  " + _describe(conn))
    link = net.links[0]
    for label, counters in link.stats().items():
        print(f"link {label}: {counters}")
    writer.flush()
    net.close()
    print(f"\npcap written to {args.pcap} (open it with Wireshark or tcpdump -r)")
    return 0 if response.content == PAGE else 1


def _serve_on(host: Any, server: Any) -> None:
    from multisock.runtime import use_host

    with use_host(host):
        server.serve_forever(poll_interval=0.05)


def _kernel_cannot_reach() -> bool:
    from multisock.monkey import get_original

    kernel = get_original("socket", "socket")(kernel_socket.AF_INET, kernel_socket.SOCK_STREAM)
    kernel.settimeout(0.2)
    try:
        kernel.connect(("127.0.0.1", 8080))
    except OSError:
        return True
    finally:
        kernel.close()
    return False


def _describe(row: dict[str, Any]) -> str:
    conn = {**(row.get("info") or {}), "local": row["local"], "remote": row["remote"],
            "state": row["state"]}
    keys = ("local", "remote", "state", "rtt", "cwnd", "snd_cwnd", "retransmits", "total_retrans",
            "bytes_sent", "bytes_acked", "bytes_received")
    return ", ".join(f"{k}={conn[k]}" for k in keys if k in conn)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
