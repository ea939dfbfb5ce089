"""``python -m multisock demo``: the main job in one minute.

Two virtual hosts, a delayed and lossy link between them, the stdlib's
``http.server`` serving on one and a client on the other — unmodified code, all
bytes through multisock's TCP/IP stack. Prints the response, the connection
statistics and the link's counters; writes a pcap only when asked (``--pcap FILE``).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import socket as kernel_socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from multisock.net.network import Network
from multisock.net.units import TIME_UNITS, parse_duration, parse_probability

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


DESCRIPTION = """\
Two virtual hosts, alpha (10.0.0.1) and beta (10.0.0.2), joined by one link with the
delay and loss given (plus 1ms of jitter, MTU 1500). beta serves a 36 KB web page with the
stdlib's http.server; alpha fetches it with requests. Neither knows about multisock: the
demo patches the socket module, and every byte goes through multisock's TCP/IP stack.
It prints the response (and whether it arrived intact), shows that kernel sockets cannot
reach the server, and prints alpha's TCP connections (rtt, cwnd, retransmits) and the
link's counters (delivered, lost...). Needs requests: pip install 'multisock[demo]'.
Nothing is written to disk unless --pcap is given. Exit status 0 when the page arrived
intact."""


def _checked(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """An argparse type that refuses what ``parse`` refuses and keeps the text for display."""
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    check.__name__ = parse.__name__
    return check


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multisock demo", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7, metavar="N",
                        help="the network's seed: the same seed loses the same packets "
                             "(default 7)")
    parser.add_argument("--loss", type=_checked(parse_probability), default="2%", metavar="P",
                        help="packet loss on the link, each direction: 1%% or 0.01 "
                             "(default 2%%)")
    parser.add_argument("--delay", type=_checked(parse_duration), default="10ms",
                        metavar="TIME", help=f"one-way delay of the link; a unit is required: "
                                             f"{TIME_UNITS} (default 10ms)")
    parser.add_argument("--pcap", metavar="FILE",
                        help="write every packet of the demo to FILE, for Wireshark or "
                             "tcpdump -r (default: no capture)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from multisock import monkey

    net = Network(seed=args.seed)
    alpha = net.add_host("alpha", "10.0.0.1/24", "fd00::1/64")
    beta = net.add_host("beta", "10.0.0.2/24", "fd00::2/64")
    net.link(alpha, beta, delay=args.delay, jitter="1ms", loss=args.loss, mtu=1500)
    writer = net.capture(args.pcap) if args.pcap else None
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
    if writer is not None:
        writer.flush()
    net.close()
    if args.pcap:
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
