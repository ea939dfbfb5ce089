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
import textwrap
from typing import Any

from multisock.net.units import RATE_UNITS, TIME_UNITS
from multisock.options import (
    IMPAIRMENTS,
    OPTIONS,
    TUN_OWNER,
    Option,
    OptionError,
    check_combination,
)

EPILOG = "\n".join(textwrap.wrap(
    f"UNITS: a time needs one ({TIME_UNITS}); a rate needs one ({RATE_UNITS}). A bare "
    "number such as --delay 20 is refused. Probabilities are 1% or 0.01. Every option has a "
    "MULTISOCK_<OPTION> environment variable for MULTISOCK=1 (docs/activation.md).", 79))


class ActivationError(Exception):
    """The settings were valid but the host could not be built as asked (TUN busy, a pcap
    file that cannot be written...): the program must not start on kernel sockets instead."""


def _argparse_type(option: Option) -> Any:
    def convert(text: str) -> Any:
        try:
            return option.check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option.name
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multisock run",
        usage="python -m multisock run [options] script.py [args...] | -m module [args...]",
        description="Run a Python program with its sockets on multisock's userspace stack.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in OPTIONS:
        if not option.flag:
            continue
        help_text = option.help.replace("%", "%%")
        flag = "--" + option.name.replace("_", "-")
        if option.switch:
            parser.add_argument(flag, dest=option.name, action="store_true", help=help_text)
        else:
            parser.add_argument(flag, dest=option.name, metavar=option.metavar,
                                type=_argparse_type(option), help=help_text,
                                action="append" if option.listed else "store")
    parser.add_argument("-m", dest="module", help="run a library module as a script")
    parser.add_argument("target", nargs=argparse.REMAINDER, help="script.py [args...]")
    return parser


def options_from_env(env: dict[str, str]) -> dict[str, Any]:
    """The shims' configuration: MULTISOCK_<OPTION> mirrors --<option>, every value checked
    (``multisock.options.from_env``; raises ``OptionError``)."""
    from multisock.options import from_env

    return from_env(env)


def _inherits_tun(name: str, options: dict[str, Any]) -> bool:
    """A child of the process holding TUN device ``name``: it must not create it again."""
    owner = options.get("tun_owner")
    return owner is not None and owner != os.getpid() and os.path.exists(f"/sys/class/net/{name}")


def activate(options: dict[str, Any]) -> Any:
    """Create the default host as configured, make it the process default, patch.

    Raises ``ActivationError`` when the host cannot be built as asked.
    """
    if options.get("gevent"):
        # gevent first: the network below then gets the gevent backend (net.backends)
        try:
            from gevent import monkey as gevent_monkey
        except ImportError:
            raise ActivationError("gevent was asked for but is not installed "
                                  "(pip install 'multisock[gevent]')") from None
        gevent_monkey.patch_all()
    from multisock import monkey
    from multisock.net.network import Network
    from multisock.runtime import set_default_host

    net = Network(seed=options.get("seed"), name="run", backend=options.get("backend"))
    try:
        host = _build_host(net, options)
    except BaseException:
        net.close()
        raise
    set_default_host(host)
    host.driver.start()
    monkey.patch_all()
    if options.get("stats"):
        atexit.register(print_stats, host)
    atexit.register(net.close)
    return host


def _build_host(net: Any, options: dict[str, Any]) -> Any:
    host = net.add_host(options.get("hostname") or "multisock")
    impairments = {k: options[k] for k in IMPAIRMENTS if options.get(k)}
    if impairments:
        host.impair_loopback(**impairments)
    tun_name = options.get("tun")
    if tun_name and not _inherits_tun(tun_name, options):
        from multisock.net.tun import TunUnavailable

        try:
            tun = host.attach_tun(tun_name, options.get("addr") or [], options.get("peer") or [],
                                  mtu=int(options.get("mtu") or 1500))
        except TunUnavailable as exc:
            raise ActivationError(f"TUN device {tun_name!r}: {exc.strerror}") from None
        except (OSError, ValueError) as exc:
            raise ActivationError(f"TUN device {tun_name!r}: {exc}") from None
        if impairments:
            tun.impair(**impairments)
        # children (which inherit the environment) get their own in-process network
        os.environ[TUN_OWNER] = str(os.getpid())
    elif options.get("mtu") and not tun_name:
        host.loopback.mtu = int(options["mtu"])
    if options.get("pcap"):
        try:
            net.capture(options["pcap"])
        except OSError as exc:
            raise ActivationError(f"cannot write the pcap file: {exc}") from None
    for line in options.get("firewall") or ():
        try:
            host.firewall.add(line)
        except (TypeError, ValueError) as exc:
            raise ActivationError(f"firewall rule {line!r}: {exc}") from None
    if options.get("ids_rules"):
        try:
            host.security.load_rules(options["ids_rules"])
        except (OSError, ValueError) as exc:
            raise ActivationError(f"IDS rules {options['ids_rules']!r}: {exc}") from None
    if options.get("hosts"):
        from multisock.hosts import HostsTable

        try:
            host.hosts_table = HostsTable.from_file(options["hosts"])
        except (OSError, ValueError) as exc:
            raise ActivationError(f"cannot read the hosts file: {exc}") from None
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
    try:
        check_combination(vars(args), env=False)
    except OptionError as exc:
        parser.error(str(exc))
    if args.module is None and not args.target:
        parser.error("give a script or -m module")
    if args.module is None and not os.path.exists(args.target[0]):
        print(f"multisock run: can't open file {args.target[0]!r}: no such file", file=sys.stderr)
        return 2
    from multisock import runtime

    if runtime.env_activated:
        parser.error("MULTISOCK=1 in the environment already activated multisock in this "
                     "process; unset MULTISOCK to use run's options")
    options = {k: v for k, v in vars(args).items() if k not in ("module", "target")}
    try:
        activate(options)
    except ActivationError as exc:
        print(f"multisock run: {exc}", file=sys.stderr)
        return 1
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
