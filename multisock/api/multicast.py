"""Multicast socket options of datagram sockets, as Linux takes and reports them.

IP_ADD_MEMBERSHIP/IP_DROP_MEMBERSHIP (``struct ip_mreq`` or ``ip_mreqn``),
IPV6_JOIN_GROUP/IPV6_LEAVE_GROUP (``struct ipv6_mreq``), IP_MULTICAST_IF (an address or an
``ip_mreqn``) and IPV6_MULTICAST_IF (an interface index), the TTL/hop limit and loop
switches. Joining records the group on the host's interface (``Interface.groups``): the
host then accepts the group's datagrams there, and a switch delivers them to its port.
"""

from __future__ import annotations

import _socket
import errno
import sys
from typing import Any

from multisock.api import options as O
from multisock.api.errors import oserror
from multisock.stack.addresses import is_multicast
from multisock.stack.datagram import DatagramEndpoint

IPPROTO_IP, IPPROTO_IPV6 = O.IPPROTO_IP, O.IPPROTO_IPV6
_IP = {getattr(_socket, n) for n in ("IP_ADD_MEMBERSHIP", "IP_DROP_MEMBERSHIP",
                                     "IP_MULTICAST_IF", "IP_MULTICAST_TTL", "IP_MULTICAST_LOOP")}
_IPV6 = {getattr(_socket, n) for n in ("IPV6_JOIN_GROUP", "IPV6_LEAVE_GROUP",
                                       "IPV6_MULTICAST_IF", "IPV6_MULTICAST_HOPS",
                                       "IPV6_MULTICAST_LOOP")}


def handles(level: int, option: int, family: int) -> bool:
    """Is this one of the options this module takes (IPv6 ones only on AF_INET6)?"""
    if level == IPPROTO_IP:
        return option in _IP
    return level == IPPROTO_IPV6 and family == _socket.AF_INET6 and option in _IPV6


def _raw(value: Any) -> bytes:
    if isinstance(value, int):
        return value.to_bytes(4, sys.byteorder, signed=value < 0)
    return bytes(memoryview(value))


def setsockopt(ip: Any, udp: Any, ep: DatagramEndpoint, level: int, option: int,
               value: Any) -> None:
    """Apply one multicast option (driver lock held); Linux's errors."""
    if level == IPPROTO_IP:
        if option == _socket.IP_MULTICAST_TTL:
            ttl = O.as_int(value)
            if ttl == -1:
                ttl = 1
            if not 0 <= ttl <= 255:
                raise oserror(errno.EINVAL)
            ep.multicast_ttl = ttl
        elif option == _socket.IP_MULTICAST_LOOP:
            ep.multicast_loop = O.as_bool(value)
        elif option == _socket.IP_MULTICAST_IF:
            raw = _raw(value)
            if len(raw) < 4:
                raise oserror(errno.EINVAL)
            addr = raw[4:8] if len(raw) >= 12 else raw[:4]
            ifindex = int.from_bytes(raw[8:12], sys.byteorder) if len(raw) >= 12 else 0
            if addr == bytes(4) and not ifindex:
                ep.multicast_if = None
                return
            iface = ip.multicast_device(b"", addr, ifindex)
            if iface is None:
                raise oserror(errno.EADDRNOTAVAIL)
            ep.multicast_if = (iface, addr)
        else:  # IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP
            raw = _raw(value)
            if len(raw) < 8:
                raise oserror(errno.EINVAL)
            group, addr = raw[:4], raw[4:8]
            ifindex = int.from_bytes(raw[8:12], sys.byteorder) if len(raw) >= 12 else 0
            _membership(ip, udp, ep, option == _socket.IP_ADD_MEMBERSHIP, group, addr, ifindex)
        return
    if option == _socket.IPV6_MULTICAST_HOPS:
        hops = O.as_int(value)
        if not -1 <= hops <= 255:
            raise oserror(errno.EINVAL)
        ep.multicast_ttl = 1 if hops == -1 else hops
    elif option == _socket.IPV6_MULTICAST_LOOP:
        loop = O.as_int(value)
        if loop not in (0, 1):
            raise oserror(errno.EINVAL)
        ep.multicast_loop = bool(loop)
    elif option == _socket.IPV6_MULTICAST_IF:
        ifindex = O.as_int(value)
        if not ifindex:
            ep.multicast_if = None
            return
        iface = ip.multicast_device(b"", None, ifindex)
        if iface is None:
            raise oserror(errno.ENODEV)
        ep.multicast_if = (iface, ifindex.to_bytes(4, sys.byteorder))
    else:  # IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP
        raw = _raw(value)
        if len(raw) < 20:
            raise oserror(errno.EINVAL)
        group, ifindex = raw[:16], int.from_bytes(raw[16:20], sys.byteorder)
        _membership(ip, udp, ep, option == _socket.IPV6_JOIN_GROUP, group, None, ifindex)


def _membership(ip: Any, udp: Any, ep: DatagramEndpoint, join: bool, group: bytes,
                addr: bytes | None, ifindex: int) -> None:
    if not is_multicast(group):
        raise oserror(errno.EINVAL)
    iface = ip.multicast_device(group, addr, ifindex)
    if join:
        if iface is None:
            raise oserror(errno.ENODEV)
        udp.join(ep, group, iface)
        return
    named = ifindex or (addr is not None and addr != bytes(4))
    if iface is None and not named:
        raise oserror(errno.ENODEV)
    udp.leave(ep, group, iface if named else None)


def getsockopt(ep: DatagramEndpoint, level: int, option: int) -> int:
    """The value of a multicast option (membership options cannot be read: ENOPROTOOPT)."""
    if option in (_socket.IP_MULTICAST_TTL, _socket.IPV6_MULTICAST_HOPS):
        return ep.multicast_ttl
    if option in (_socket.IP_MULTICAST_LOOP, _socket.IPV6_MULTICAST_LOOP):
        return int(ep.multicast_loop)
    if level == IPPROTO_IP and option == _socket.IP_MULTICAST_IF:
        named = ep.multicast_if[1] if ep.multicast_if is not None else bytes(4)
        return int.from_bytes(named[:4], sys.byteorder)
    if level == IPPROTO_IPV6 and option == _socket.IPV6_MULTICAST_IF:
        return ep.multicast_if[0].index if ep.multicast_if is not None else 0
    raise oserror(errno.ENOPROTOOPT)
