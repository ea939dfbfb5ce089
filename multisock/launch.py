"""Build the host that ``run``, the shims and the pytest plugin ask for, and activate it.

``activate(options)`` takes the checked settings (``multisock.options``: one table for the
``run`` flags and the ``MULTISOCK_*`` variables), builds a network with one host carrying
the impairments, makes it the process default and patches the stdlib. It lives below the
entry points (``cli``, ``_activate``) and the tools (the pytest plugin) that all call it.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any

from multisock.options import IMPAIRMENTS, TUN_OWNER


class ActivationError(Exception):
    """The settings were valid but the host could not be built as asked (TUN busy, a pcap
    file that cannot be written...): the program must not start on kernel sockets instead."""


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
    if options.get("fd_mode"):
        from multisock.api.stream import set_default_fd_mode

        set_default_fd_mode(options["fd_mode"])
    host.driver.start()
    monkey.patch_all()
    if options.get("stats"):
        # the gateways as built: net.close (which runs first, atexit being LIFO) forgets them
        atexit.register(print_stats, host, list(net.gateways))
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
                                  mtu=int(options.get("mtu") or 1500),
                                  offload=not options.get("no_tun_offload"))
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
    # a simulation is sealed: kernel sockets would bring real time and real fates in
    gateway = not options.get("isolated") and not tun_name and not options.get("virtual_time")
    if gateway:
        _add_gateway(net, host, impairments, options.get("publish") or [])
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
    elif gateway:
        from multisock.gateway.dns import HOSTS
        from multisock.hosts import HostsTable

        try:
            host.hosts_table = HostsTable.from_file(HOSTS)  # the host's names, like slirp
        except (OSError, ValueError):
            pass
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
    elif gateway:
        from multisock.gateway.dns import read_resolv_conf
        from multisock.resolver import StubResolver
        from multisock.socket import socket as msocket

        conf = read_resolv_conf()  # the host's resolvers, reached through the gateway
        host.resolver = StubResolver(
            conf.nameservers, search=conf.search, ndots=conf.ndots, timeout=conf.timeout,
            attempts=conf.attempts, socket_factory=lambda fam, typ: msocket(fam, typ, host=host))
    return host


def _add_gateway(net: Any, host: Any, impairments: dict[str, Any], publish: list[Any]) -> None:
    """The host gateway (docs/gateway.md): flows with no virtual listener - on the loopback
    or to any other address - leave through kernel sockets; ``--publish`` lets kernel
    clients in. The link to the gateway carries the same impairments as the loopback."""
    gateway = net.add_gateway()
    gateway.attach(host, **impairments)
    gateway.relay_loopback(host)
    for spec in publish:
        try:
            gateway.publish(spec.host_port, host, spec.port, spec.proto, host_ip=spec.host_ip)
        except OSError as exc:
            where = f"{spec.host_ip or '127.0.0.1'}:{spec.host_port}/{spec.proto}"
            raise ActivationError(f"cannot publish {where}: {exc.strerror or exc}") from None


def print_stats(host: Any, gateways: Any = ()) -> None:
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
    for gateway in gateways:  # its own counters and flows (docs/gateway.md)
        for line in gateway.report():
            print(f"multisock: {line}" if not line.startswith(" ") else line, file=sys.stderr)
