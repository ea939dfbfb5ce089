"""The host's resolver configuration, for virtual hosts that resolve through the gateway.

``/etc/resolv.conf``'s nameservers are used as they are: a loopback one (127.0.0.53,
systemd-resolved's stub) is reached by the host's loopback relay, any other through the
gateway's UDP relay. Only the parts a stub resolver uses are read (``nameserver``,
``search``/``domain``, ``options ndots:N timeout:N attempts:N``), like glibc.
"""

from __future__ import annotations

from typing import NamedTuple

from multisock.stack import addresses as A

RESOLV_CONF = "/etc/resolv.conf"
HOSTS = "/etc/hosts"


class ResolvConf(NamedTuple):
    nameservers: list[tuple[str, int]]
    search: list[str]
    ndots: int
    timeout: float
    attempts: int


def parse_resolv_conf(text: str) -> ResolvConf:
    """glibc's reading: later ``search``/``domain`` lines replace earlier ones, at most
    three nameservers, bad lines ignored; no nameserver means the local one (127.0.0.1)."""
    servers: list[tuple[str, int]] = []
    search: list[str] = []
    ndots, timeout, attempts = 1, 5.0, 2
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values and len(servers) < 3:
            address = values[0].split("%", 1)[0]  # fe80::1%eth0: the scope is not ours
            try:
                A.pack(address)
            except OSError:
                continue
            servers.append((address, 53))
        elif key in ("search", "domain") and values:
            search = [v.strip(".") for v in (values if key == "search" else values[:1])]
        elif key == "options":
            for value in values:
                name, _, number = value.partition(":")
                if not number.isdigit():
                    continue
                if name == "ndots":
                    ndots = min(int(number), 15)
                elif name == "timeout":
                    timeout = float(max(1, min(int(number), 30)))
                elif name == "attempts":
                    attempts = max(1, min(int(number), 5))
    if not servers:
        servers = [("127.0.0.1", 53)]
    return ResolvConf(servers, search, ndots, timeout, attempts)


def read_resolv_conf(path: str = RESOLV_CONF) -> ResolvConf:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_resolv_conf(f.read())
    except OSError:
        return parse_resolv_conf("")
