"""A port scanner over multisock's stack: TCP connect scan, UDP scan through ICMP unreachables.

Run: ``python -m multisock run examples/scanner.py 127.0.0.1 -p 1-1024`` (the program's
``socket`` is multisock's), or plainly ``python examples/scanner.py`` to scan a virtual
target built here, which serves a few ports and has a firewall that drops one port and
rejects another - so the three answers a scanner tells apart all show:

* TCP: ``open`` (connected), ``closed`` (refused: a RST, or an ICMP port unreachable from a
  firewall's reject), ``filtered`` (no answer within ``--timeout``: a firewall's drop).
* UDP: ``closed`` (ICMP port unreachable), ``open`` (a reply), ``open|filtered`` (silence:
  an open port that does not answer and a dropped probe look the same).

``--rate N`` sends at most N probes per second (a slow scan slips under a detector's window).
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

Factory = Callable[[int], Any]  # socket type -> a new AF_INET socket


def parse_ports(text: str) -> list[int]:
    ports: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        ports.extend(range(int(low), int(high or low) + 1))
    return ports


class Pacer:
    """At most ``rate`` probes per second (None: as fast as answers come)."""

    def __init__(self, rate: float | None) -> None:
        self.gap = 1.0 / rate if rate else 0.0
        self.next = time.monotonic()

    def wait(self) -> None:
        if self.gap:
            now = time.monotonic()
            if now < self.next:
                time.sleep(self.next - now)
            self.next = max(now, self.next) + self.gap


def tcp_scan(make: Factory, target: str, ports: list[int], timeout: float,
             rate: float | None = None) -> dict[int, str]:
    pacer = Pacer(rate)
    states = {}
    for port in ports:
        pacer.wait()
        sock = make(socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((target, port))
            states[port] = "open"
        except ConnectionRefusedError:
            states[port] = "closed"
        except TimeoutError:
            states[port] = "filtered"
        except OSError as exc:
            states[port] = f"error ({exc.strerror})"
        finally:
            sock.close()
    return states


def udp_scan(make: Factory, target: str, ports: list[int], timeout: float,
             rate: float | None = None) -> dict[int, str]:
    pacer = Pacer(rate)
    states = {}
    for port in ports:
        pacer.wait()
        sock = make(socket.SOCK_DGRAM)
        sock.settimeout(timeout)
        try:
            sock.connect((target, port))  # connected: the ICMP error comes back as an errno
            sock.send(b"\0" * 8)
            sock.recv(512)
            states[port] = "open"
        except ConnectionRefusedError:
            states[port] = "closed"
        except TimeoutError:
            states[port] = "open|filtered"
        except OSError as exc:
            states[port] = f"error ({exc.strerror})"
        finally:
            sock.close()
    return states


def report(target: str, proto: str, states: dict[int, str], out: Any = sys.stdout,
           show_closed: bool = False) -> None:
    print(f"scan report for {target} ({proto})", file=out)
    print(f"{'PORT':<10}STATE", file=out)
    hidden = 0
    for port, state in states.items():
        if state == "closed" and not show_closed:
            hidden += 1
            continue
        print(f"{f'{port}/{proto}':<10}{state}", file=out)
    if hidden:
        print(f"not shown: {hidden} closed ports", file=out)


def demo_target(net: Any) -> tuple[Any, Any, list[Any]]:
    """A scanner host and a target serving TCP 22, 80, 443 (443 dropped by its firewall)
    and 8080 (rejected by it); the sockets are returned to keep them open."""
    scanner = net.add_host("scanner", "10.9.0.1/24")
    target = net.add_host("target", "10.9.0.2/24")
    net.link(scanner, target)
    kept = []
    for port in (22, 80, 443, 8080):
        server = target.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("0.0.0.0", port))
        server.listen()
        kept.append(server)
    target.firewall.add_rule("input", "drop", proto="tcp", dport=443)
    target.firewall.add_rule("input", "reject", proto="tcp", dport=8080)
    return scanner, target, kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?")
    parser.add_argument("-p", dest="ports", default="1-1024", help="e.g. 22,80,8000-8100")
    parser.add_argument("-u", "--udp", action="store_true", help="UDP scan instead of TCP")
    parser.add_argument("--timeout", type=float, default=0.5, help="per probe, seconds")
    parser.add_argument("--rate", type=float, default=None, help="probes per second at most")
    parser.add_argument("--all", action="store_true", help="list closed ports too")
    args = parser.parse_args(argv)
    ports = parse_ports(args.ports)
    scan = udp_scan if args.udp else tcp_scan
    proto = "udp" if args.udp else "tcp"
    if socket.socket.__module__ == "multisock.socket":  # under ``multisock run``
        target = args.target or "127.0.0.1"
        report(target, proto, scan(lambda kind: socket.socket(socket.AF_INET, kind), target,
                                   ports, args.timeout, args.rate), show_closed=args.all)
        return 0
    import multisock

    with multisock.Network(seed=1) as net:
        scanner, victim, _kept = demo_target(net)
        victim.security.detect_scans(ports=20, window=5.0)
        target = args.target or "10.9.0.2"
        states = scan(lambda kind: scanner.socket(socket.AF_INET, kind), target, ports,
                      args.timeout, args.rate)
        report(target, proto, states, show_closed=args.all)
        for event in victim.security.events():
            print(f"target's detector: {event.kind} from {event.source} {event.details}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
