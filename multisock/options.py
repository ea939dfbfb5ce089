"""The activation settings, defined once: ``run``'s flags and the ``MULTISOCK_*`` variables.

Both ways in (``python -m multisock run --loss 1%`` and ``MULTISOCK=1 MULTISOCK_LOSS=1%``)
check every value here before anything is built. A bad value, an unknown ``MULTISOCK_*``
name or a missing companion setting is an ``OptionError``: the program must stop with one
clear message rather than run on kernel sockets while its author believes it is impaired.
Times and rates need a unit (``multisock.net.units``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from multisock.net.units import (
    RATE_UNITS,
    TIME_UNITS,
    parse_duration,
    parse_probability,
    parse_rate,
)

PREFIX = "MULTISOCK_"
# Set by the process that attaches a TUN device, inherited by its children: they must not
# try to create the same device again (docs/activation.md, "Shims").
TUN_OWNER = "MULTISOCK_TUN_OWNER"
# Read by the test suite and the benchmarks, not by activation: known, so not refused.
OTHER_READERS = ("MULTISOCK_FULL_TRANSFERS", "MULTISOCK_GEVENT_BIG")


class OptionError(ValueError):
    """A setting that activation refuses; ``where`` is ``--loss`` or ``MULTISOCK_LOSS``."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def _integer(text: str) -> int:
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise ValueError(f"not an integer: {text!r}") from None


def _mtu(text: str) -> int:
    mtu = _integer(text)
    if not 68 <= mtu <= 65536:
        raise ValueError(f"MTU must be within 68..65536: {text!r}")
    return mtu


def _nonempty(text: str) -> str:
    if not text or text != text.strip() or "\0" in text:
        raise ValueError(f"empty or padded with spaces: {text!r}")
    return text


def _ifname(text: str) -> str:
    if not 0 < len(text) < 16 or any(c in text for c in "/: \t\n\0") or text in (".", ".."):
        raise ValueError(f"not a network interface name (1-15 characters, no '/', ':' or "
                         f"spaces): {text!r}")
    return text


def _cidr(text: str) -> str:
    if "/" not in text:
        raise ValueError(f"an address with its prefix length is needed, e.g. 10.77.0.2/24: {text!r}")
    import ipaddress  # here: only TUN settings are checked with it (~0.25 MiB loaded)

    try:
        ipaddress.ip_interface(text.strip())
    except ValueError:
        raise ValueError(f"not an address/prefix: {text!r}") from None
    return text.strip()


def _ip(text: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None
    return text.strip()


def _dns(text: str) -> str:
    server, port = text.strip(), "53"
    if server.count(":") == 1:  # IPv4 "IP:PORT"
        server, port = server.split(":")
    _ip(server)
    if not 0 < _integer(port) < 65536:
        raise ValueError(f"port must be within 1..65535: {text!r}")
    return text.strip()


def _switch(text: str) -> bool:
    if text not in ("", "0", "1"):
        raise ValueError(f"use 1 (on) or 0 (off): {text!r}")
    return text == "1"


def _backend(text: str) -> str:
    from multisock.net.backends import BACKENDS

    if text.strip().lower() not in ("auto", *BACKENDS):
        raise ValueError(f"unknown backend {text!r} (auto, {', '.join(BACKENDS)})")
    return text


def _firewall_rule(text: str) -> str:
    from multisock.security.rules import check_line

    return check_line(text)


def _fd_mode(text: str) -> str:
    if text.strip() not in ("readiness", "bridged"):
        raise ValueError(f"use readiness or bridged: {text!r}")
    return text.strip()


def _pid(text: str) -> int:
    pid = _integer(text)
    if pid <= 0:
        raise ValueError(f"not a process id: {text!r}")
    return pid


class Publish(tuple[str | None, int, int, str]):
    """One ``--publish``: (kernel address or None for 127.0.0.1 and ::1, kernel port,
    virtual port, "tcp" or "udp")."""

    __slots__ = ()

    @property
    def host_ip(self) -> str | None:
        return self[0]

    @property
    def host_port(self) -> int:
        return self[1]

    @property
    def port(self) -> int:
        return self[2]

    @property
    def proto(self) -> str:
        return self[3]


def _port(text: str, where: str) -> int:
    port = _integer(text)
    if not 0 < port < 65536:
        raise ValueError(f"port must be within 1..65535: {where!r}")
    return port


def _publish(text: str) -> Publish:
    """``[HOSTIP:]HOSTPORT[:PORT][/udp]`` (an IPv6 HOSTIP in brackets: ``[::1]:8000``)."""
    spec, proto = text.strip(), "tcp"
    if "/" in spec:
        spec, proto = spec.rsplit("/", 1)
        if proto not in ("tcp", "udp"):
            raise ValueError(f"protocol must be tcp or udp: {text!r}")
    host_ip: str | None = None
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0 or spec[end + 1:end + 2] != ":":
            raise ValueError(f"use [IPv6]:HOSTPORT[:PORT]: {text!r}")
        host_ip, spec = _ip(spec[1:end]), spec[end + 2:]
    parts = spec.split(":")
    if host_ip is None and len(parts) == 3 or host_ip is None and len(parts) == 2 and "." in parts[0]:
        host_ip = _ip(parts.pop(0))
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"use [HOSTIP:]HOSTPORT[:PORT][/udp]: {text!r}")
    host_port = _port(parts[0], text)
    port = _port(parts[1], text) if len(parts) == 2 else host_port
    return Publish((host_ip, host_port, port, proto))


@dataclass(frozen=True)
class Option:
    name: str
    check: Callable[[str], Any]
    help: str
    metavar: str | None = None
    listed: bool = False  # repeatable flag; separated by ``separator`` in the environment
    switch: bool = False  # a flag without value; 1 or 0 in the environment
    flag: bool = True  # False: an environment variable only
    separator: str = ","  # between a listed option's values in the environment

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("delay", parse_duration, f"one-way delay; a unit is required: {TIME_UNITS}", "TIME"),
    Option("jitter", parse_duration, f"delay variation; a unit is required: {TIME_UNITS}", "TIME"),
    Option("loss", parse_probability, "packet loss probability: 1% or 0.01", "P"),
    Option("reorder", parse_probability, "reordering probability: 1% or 0.01", "P"),
    Option("duplicate", parse_probability, "duplication probability: 1% or 0.01", "P"),
    Option("corrupt", parse_probability, "bit-flip probability: 1% or 0.01", "P"),
    Option("rate", parse_rate, f"bandwidth; a unit is required: {RATE_UNITS}", "RATE"),
    Option("mtu", _mtu, "loopback MTU (default 65536), or the TUN link's (default 1500)", "N"),
    Option("seed", _integer, "random seed (the same impairments on every run)", "N"),
    Option("pcap", _nonempty, "write every packet to FILE", "FILE"),
    Option("stats", _switch, "print per-connection stats at exit (stderr)", switch=True),
    Option("hosts", _nonempty, "an /etc/hosts-style name table", "FILE"),
    Option("dns", _dns, "DNS server for names not otherwise known", "IP[:PORT]"),
    Option("hostname", _nonempty, "the virtual host's name (default multisock)", "NAME"),
    Option("tun", _ifname, "attach the host to TUN device NAME (root; needs --addr and --peer)",
           "NAME"),
    Option("addr", _cidr, "the stack's address on the TUN link (repeat for IPv4 and IPv6)",
           "CIDR", listed=True),
    Option("peer", _ip, "the kernel's address on the TUN link; default route via it", "IP",
           listed=True),
    Option("no_tun_offload", _switch, "the TUN link without virtio-net offloads: packets of "
           "the MTU only, every checksum computed and verified here (slower; for comparison "
           "or a kernel that refuses them)", switch=True),
    Option("isolated", _switch, "no host gateway: connections stay inside the process "
           "(without it, flows with no virtual listener reach real services)", switch=True),
    Option("publish", _publish, "kernel port relayed to the program's PORT (127.0.0.1 and ::1 "
           "unless HOSTIP is given; repeatable)", "[HOSTIP:]HOSTPORT[:PORT][/udp]", listed=True),
    Option("gevent", _switch, "gevent.monkey.patch_all() first; the stack then runs on the hub",
           switch=True),
    Option("firewall", _firewall_rule, "a firewall rule, e.g. \"input drop tcp dport 5432\" "
           "(repeat; ';' between rules in the environment; grammar in docs/security.md)",
           "RULE", listed=True, separator=";"),
    Option("ids_rules", _nonempty, "IDS/IPS rules (Snort subset) for the host, from FILE",
           "FILE"),
    Option("virtual_time", _switch, "run in a simulation: virtual clock, time moves only when "
           "every task waits; seeded randomness (docs/simulation.md)", switch=True),
    Option("until", parse_duration, "with --virtual-time: stop at this virtual time "
           f"(exit status 124); a unit is required: {TIME_UNITS}", "TIME"),
    Option("fd_mode", _fd_mode, "what a socket's fileno() is: readiness (default; an eventfd "
           "readable when the socket is) or bridged (a connected TCP socket's fd is a kernel "
           "TCP connection over loopback carrying its bytes, urgent data and resets, a UDP "
           "socket's an AF_UNIX datagram pair carrying its datagrams, for C code, sendfile, "
           "subprocess stdin/stdout; not with --gevent)", "MODE"),
    Option("backend", _backend, "the network's driver: auto, threads or gevent", flag=False),
    Option("tun_owner", _pid, "set by the process holding the TUN device", flag=False),
)
BY_ENV = {option.env: option for option in OPTIONS}
IMPAIRMENTS = ("delay", "jitter", "loss", "reorder", "duplicate", "corrupt", "rate")


def enabled(env: Mapping[str, str]) -> bool:
    """``MULTISOCK``: 1 activates, 0 or unset does not, anything else is refused."""
    value = env.get("MULTISOCK", "")
    if value not in ("", "0", "1"):
        raise OptionError(f"MULTISOCK={value!r}", "use MULTISOCK=1 to activate, 0 or unset not to")
    return value == "1"


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Every ``MULTISOCK_*`` variable checked and converted; raises ``OptionError``."""
    out: dict[str, Any] = {}
    for key in sorted(env):
        if not key.startswith(PREFIX) or key in OTHER_READERS:
            continue
        option = BY_ENV.get(key)
        if option is None:
            known = ", ".join(sorted(BY_ENV))
            raise OptionError(key, f"unknown setting (known: {known})")
        text = env[key]
        try:
            if option.listed:
                out[option.name] = [option.check(part.strip())
                                    for part in text.split(option.separator) if part.strip()]
            elif option.switch or text:
                out[option.name] = option.check(text)
        except ValueError as exc:
            raise OptionError(f"{key}={text!r}", str(exc)) from None
    check_combination(out, env=True)
    return out


def check_combination(options: Mapping[str, Any], *, env: bool) -> None:
    """Settings that only mean something together."""
    def name(option: str) -> str:
        return PREFIX + option.upper() if env else "--" + option.replace("_", "-")

    if options.get("virtual_time"):
        if env:
            raise OptionError(name("virtual_time"), "a simulation needs the whole program "
                              "under it: use python -m multisock run --virtual-time")
        for other in ("tun", "gevent", "publish"):
            if options.get(other):
                raise OptionError(name(other), f"does not go with {name('virtual_time')} "
                                  "(real devices, kernel ports and gevent's hub run on real "
                                  "time; a simulation is isolated)")
    elif options.get("until"):
        raise OptionError(name("until"), f"goes with {name('virtual_time')}")
    if options.get("tun"):
        for needed in ("addr", "peer"):
            if not options.get(needed):
                raise OptionError(name("tun"), f"needs {name(needed)} as well")
    elif options.get("addr") or options.get("peer"):
        raise OptionError(f"{name('addr')}/{name('peer')}", f"go with {name('tun')}")
    elif options.get("no_tun_offload"):
        raise OptionError(name("no_tun_offload"), f"goes with {name('tun')}")
    if options.get("fd_mode") == "bridged" and options.get("gevent"):
        raise OptionError(name("fd_mode"), f"bridged does not go with {name('gevent')} yet (a "
                          "bridged socket's Python calls block in the kernel, which would "
                          "stall the hub)")
    if options.get("publish") and options.get("isolated"):
        raise OptionError(name("publish"), f"needs the gateway, which {name('isolated')} "
                          "turns off")
