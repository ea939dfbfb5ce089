"""``python -m multisock run [options] script.py [args]`` / ``run [options] -m module [args]``.

Builds one virtual host whose loopback (and so every client and server in the
program) carries the impairments given, patches before the target is imported,
then runs it as ``__main__`` with the ``sys.argv`` it expects. The exit code
passes through. The same options exist as environment variables for the shims
(``MULTISOCK_DELAY``...); see ``docs/activation.md``.
"""

from __future__ import annotations

import argparse
import atexit
import os
import runpy
import sys
from typing import Any

IMPAIRMENTS = ("delay", "jitter", "loss", "reorder", "duplicate", "corrupt", "rate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m multisock run",
        description="Run a Python program with its sockets on multisock's userspace stack.",
    )
    parser.add_argument("--delay", help="one-way delay, e.g. 10ms")
    parser.add_argument("--jitter", help="delay variation, e.g. 2ms")
    parser.add_argument("--loss", help="packet loss, e.g. 1%%")
    parser.add_argument("--reorder", help="reordering probability, e.g. 1%%")
    parser.add_argument("--duplicate", help="duplication probability, e.g. 1%%")
    parser.add_argument("--corrupt", help="bit-flip probability, e.g. 1%%")
    parser.add_argument("--rate", help="bandwidth, e.g. 10mbit")
    parser.add_argument("--mtu", type=int, help="loopback MTU (default 65536)")
    parser.add_argument("--seed", type=int, help="random seed (reproducible impairments)")
    parser.add_argument("--pcap", metavar="FILE", help="write every packet to FILE")
    parser.add_argument("--stats", action="store_true", help="print per-connection stats at exit")
    parser.add_argument("--hosts", metavar="FILE", help="an /etc/hosts-style name table")
    parser.add_argument("--dns", metavar="IP", help="DNS server for names not otherwise known")
    parser.add_argument("--hostname", default="multisock", help="the virtual host's name")
    parser.add_argument("--tun", metavar="NAME", help="attach the host to TUN device NAME (root)")
    parser.add_argument("--addr", metavar="CIDR", action="append",
                        help="the stack's address on the TUN link (repeat for IPv4 and IPv6)")
    parser.add_argument("--peer", metavar="IP", action="append",
                        help="the kernel's address on the TUN link; default route via it")
    parser.add_argument("--gevent", action="store_true",
                        help="gevent.monkey.patch_all() first; the stack then runs on the hub")
    parser.add_argument("-m", dest="module", help="run a library module as a script")
    parser.add_argument("target", nargs=argparse.REMAINDER, help="script.py [args...]")
    return parser


def options_from_env(env: dict[str, str]) -> dict[str, Any]:
    """The shims' configuration: MULTISOCK_<OPTION> mirrors --<option>."""
    out: dict[str, Any] = {}
    for name in (*IMPAIRMENTS, "pcap", "hosts", "dns", "hostname", "tun"):
        value = env.get(f"MULTISOCK_{name.upper()}")
        if value:
            out[name] = value
    for name in ("addr", "peer"):
        value = env.get(f"MULTISOCK_{name.upper()}")
        if value:
            out[name] = value.split(",")
    for name in ("mtu", "seed"):
        value = env.get(f"MULTISOCK_{name.upper()}")
        if value:
            out[name] = int(value)
    out["stats"] = env.get("MULTISOCK_STATS", "") not in ("", "0")
    out["gevent"] = env.get("MULTISOCK_GEVENT", "") not in ("", "0")
    return out


def activate(options: dict[str, Any]) -> Any:
    """Create the default host as configured, make it the process default, patch."""
    if options.get("gevent"):
        # gevent first: the network below then gets the gevent backend (net.backends)
        from gevent import monkey as gevent_monkey

        gevent_monkey.patch_all()
    from multisock import monkey
    from multisock.net.network import Network
    from multisock.runtime import set_default_host

    net = Network(seed=options.get("seed"), name="run")
    host = net.add_host(options.get("hostname") or "multisock")
    impairments = {k: options[k] for k in IMPAIRMENTS if options.get(k)}
    if impairments:
        host.impair_loopback(**impairments)
    if options.get("tun"):
        addrs, peers = options.get("addr") or [], options.get("peer") or []
        if not addrs or not peers:
            raise SystemExit("multisock: --tun needs --addr CIDR and --peer IP")
        from multisock.net.tun import TunUnavailable

        try:
            tun = host.attach_tun(options["tun"], addrs, peers, mtu=int(options.get("mtu") or 1500))
        except TunUnavailable as exc:
            raise SystemExit(f"multisock: {exc.strerror}") from None
        if impairments:
            tun.impair(**impairments)
    elif options.get("mtu"):
        host.loopback.mtu = int(options["mtu"])
    if options.get("pcap"):
        net.capture(options["pcap"])
    if options.get("hosts"):
        from multisock.hosts import HostsTable

        host.hosts_table = HostsTable.from_file(options["hosts"])
    if options.get("dns"):
        from multisock.resolver import StubResolver
        from multisock.socket import socket as msocket

        server = options["dns"]
        port = 53
        if server.count(":") == 1:  # "IP:PORT" for IPv4
            server, port_text = server.split(":")
            port = int(port_text)
        host.resolver = StubResolver(
            [(server, port)], socket_factory=lambda fam, typ: msocket(fam, typ, host=host)
        )
    set_default_host(host)
    host.driver.start()
    monkey.patch_all()
    if options.get("stats"):
        atexit.register(print_stats, host)
    atexit.register(net.close)
    return host


def print_stats(host: Any) -> None:
    tcp = host.ip.tcp
    rows: list[dict[str, Any]] = []
    if tcp is not None:
        # a connection its program closed has its final row in the history already; in
        # TIME-WAIT the table shows it again, as a record without TCP_INFO: skip that one
        rows = list(tcp.history) + [row for row in tcp.connections()
                                    if row["info"] is not None or row["state"] != "TIME_WAIT"]
    print(f"multisock: {len(rows)} TCP connection(s) on {host.name}", file=sys.stderr)
    for row in rows:
        info = row.get("info") or {}
        print(f"  {row['local']} -> {row['remote']} {row['state']} "
              f"rtt={float(info.get('rtt', 0)) * 1000:.3f}ms cwnd={info.get('snd_cwnd', '-')} "
              f"retransmits={info.get('total_retrans', 0)} sent={info.get('bytes_sent', 0)} "
              f"received={info.get('bytes_received', 0)}", file=sys.stderr)
    print(f"  ip: {host.ip.counters}", file=sys.stderr)


def run_main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tun is None and (args.addr or args.peer):
        print("multisock run: --addr/--peer go with --tun", file=sys.stderr)
        return 2
    if args.module is None and not args.target:
        parser.print_usage(sys.stderr)
        print("multisock run: give a script or -m module", file=sys.stderr)
        return 2
    if args.module is None and not os.path.exists(args.target[0]):
        print(f"multisock run: can't open file {args.target[0]!r}: no such file", file=sys.stderr)
        return 2
    options = {k: v for k, v in vars(args).items() if k not in ("module", "target")}
    activate(options)
    try:
        if args.module is not None:
            sys.argv = [args.module, *args.target]
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        else:
            script = args.target[0]
            sys.argv = list(args.target)
            sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0
