"""Host-name resolution for socket calls made on a virtual host.

Order, like glibc's ``hosts: files dns``: numeric forms (handled by the caller),
``localhost``, the names of hosts in the same :class:`Network`, the host's hosts
table, then the DNS stub resolver over the stack's own UDP when one is set.
"""

from __future__ import annotations

import _socket
from typing import TYPE_CHECKING

from multisock.stack import addresses as A

if TYPE_CHECKING:
    from multisock.net.host import Host

EAI_NONAME = _socket.EAI_NONAME


def _noname() -> OSError:
    return _socket.gaierror(EAI_NONAME, "Name or service not known")


def candidates(host: Host, name: str, family: int) -> list[bytes]:
    """All addresses ``name`` has on ``host``'s network, preferred first; [] if unknown.

    ``family`` is AF_INET, AF_INET6 or AF_UNSPEC (both, IPv6 last like glibc's
    default for hosts with both).
    """
    lowered = name.lower().rstrip(".")
    want4 = family in (A.AF_INET, _socket.AF_UNSPEC)
    want6 = family in (A.AF_INET6, _socket.AF_UNSPEC)
    out: list[bytes] = []
    if lowered in ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"):
        # the machine's hosts file decides, as glibc's does: with only "127.0.0.1 localhost"
        # in it the kernel's getaddrinfo gives no ::1 (PySocks' create_connection, say,
        # then never tries IPv6); the built-in answer is for names it does not list
        table = getattr(host, "hosts_table", None)
        if table is not None:
            texts = table.lookup(name, family)
            if texts:
                return [A.pack(t) for t in texts]
        if want4 and not lowered.startswith("ip6"):
            out.append(A.LOOPBACK4)
        if want6:
            out.append(A.LOOPBACK6)
        return out
    target = host.net.hosts.get(name) or host.net.hosts.get(lowered)
    if target is None:
        for other in host.net.hosts.values():
            if other.name.lower() == lowered:
                target = other
                break
    if target is not None:
        addrs = [a for iface in target.ip.interfaces if not iface.loopback for a, _ in iface.addresses]
        if not addrs and target is host:
            addrs = [A.LOOPBACK4, A.LOOPBACK6]
        out = [a for a in addrs if (len(a) == 4 and want4) or (len(a) == 16 and want6)]
        return out
    table = getattr(host, "hosts_table", None)
    if table is not None:
        texts = table.lookup(name, family)
        if texts:
            return [A.pack(t) for t in texts]
    resolver = getattr(host, "resolver", None)
    if resolver is not None:
        result = resolver.resolve(name, family)
        return [A.pack(t) for t in result.addresses]
    return out


def resolve_for_socket(host: Host, name: str, family: int) -> bytes:
    """One address for a socket call (bind/connect/sendto) in the socket's family."""
    found = candidates(host, name, family)
    if found:
        return found[0]
    if family == A.AF_INET6:
        v4 = candidates(host, name, A.AF_INET)
        if v4:
            return A.to_v4mapped(v4[0])
    raise _noname()
