"""sendmsg()/recvmsg() arguments and ancillary data for userspace sockets.

Argument errors are CPython's (``TypeError`` for a non-iterable, a non-3-tuple item or a
non-bytes-like buffer); which control messages are accepted, and how a too-small ancillary
buffer truncates what is received (``MSG_CTRUNC``), follow Linux (``ip_cmsg_send``,
``ip6_datagram_send_ctl``, ``put_cmsg``) as CPython then parses the buffer.
"""

from __future__ import annotations

import _socket
import errno
import struct
from typing import Any

from multisock.api.errors import oserror

Cmsg = tuple[int, int, bytes]

MSG_CTRUNC = _socket.MSG_CTRUNC
_INT = struct.Struct("i")
_HEADER = _socket.CMSG_LEN(0)
SOL_SOCKET = _socket.SOL_SOCKET
IPPROTO_IP = _socket.IPPROTO_IP
IPPROTO_IPV6 = _socket.IPPROTO_IPV6
_SCM_IGNORED = {getattr(_socket, n) for n in ("SCM_RIGHTS", "SCM_CREDENTIALS") if hasattr(_socket, n)}


def _int_arg(value: Any) -> int:
    if isinstance(value, float) or not hasattr(value, "__index__"):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    number = int(value.__index__())
    if not -(2**31) <= number < 2**31:
        raise OverflowError("signed integer is out of range for a C int")
    return number


def _bytes_arg(value: Any) -> bytes:
    try:
        return bytes(memoryview(value))
    except TypeError:
        raise TypeError(
            f"a bytes-like object is required, not '{type(value).__name__}'") from None


def sendmsg_args(buffers: Any, ancdata: Any, flags: Any) -> tuple[bytes, list[Cmsg], int]:
    """CPython's checks of sendmsg()'s arguments, in its order; the joined data."""
    try:
        items = list(buffers)
    except TypeError:
        raise TypeError("sendmsg() argument 1 must be an iterable") from None
    data = b"".join(_bytes_arg(b) for b in items)
    try:
        entries = list(ancdata)
    except TypeError:
        raise TypeError("sendmsg() argument 2 must be an iterable") from None
    cmsgs: list[Cmsg] = []
    for entry in entries:
        if not isinstance(entry, tuple) or len(entry) != 3:
            raise TypeError("[sendmsg() ancillary data items]() argument must be a tuple of "
                            "length 3")
        level, kind, payload = entry
        cmsgs.append((_int_arg(level), _int_arg(kind), _bytes_arg(payload)))
    return data, cmsgs, _int_arg(flags)


def _cmsg_int(payload: bytes) -> int:
    if len(payload) != _INT.size:
        raise oserror(errno.EINVAL)
    return int(_INT.unpack(payload)[0])


IP_PKTINFO = getattr(_socket, "IP_PKTINFO", 8)  # (Linux's value; Python 3.12 names it)
_PKTINFO4 = struct.Struct("=i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
_PKTINFO6 = struct.Struct("=16sI")  # struct in6_pktinfo: addr, ifindex
PktInfo = tuple[bytes, int]  # (source address, all zeros: any; interface index, 0: any)


def datagram_overrides(family: int, cmsgs: list[Cmsg]
                       ) -> tuple[int | None, int | None, PktInfo | None]:
    """(ttl, tos, pktinfo) one datagram carries from its control messages; EINVAL like
    Linux. ``pktinfo`` is IP_PKTINFO's (ipi_spec_dst, ipi_ifindex) or IPV6_PKTINFO's."""
    ttl: int | None = None
    tos: int | None = None
    pktinfo: PktInfo | None = None
    for level, kind, payload in cmsgs:
        if level == SOL_SOCKET:
            if kind not in _SCM_IGNORED:
                raise oserror(errno.EINVAL)
        elif family == _socket.AF_INET6 and level == IPPROTO_IPV6:
            if kind == _socket.IPV6_HOPLIMIT:
                value = _cmsg_int(payload)
                if not -1 <= value <= 255:
                    raise oserror(errno.EINVAL)
                ttl = None if value == -1 else value
            elif kind == _socket.IPV6_TCLASS:
                value = _cmsg_int(payload)
                if not -1 <= value <= 255:
                    raise oserror(errno.EINVAL)
                tos = None if value == -1 else value
            elif kind == _socket.IPV6_PKTINFO:
                if len(payload) < _PKTINFO6.size:
                    raise oserror(errno.EINVAL)
                addr, index = _PKTINFO6.unpack_from(payload)
                pktinfo = (addr, index)
            else:
                raise oserror(errno.EINVAL)
        elif family == _socket.AF_INET and level == IPPROTO_IP:
            if kind == _socket.IP_TTL:
                value = _cmsg_int(payload)
                if not 1 <= value <= 255:
                    raise oserror(errno.EINVAL)
                ttl = value
            elif kind == _socket.IP_TOS:
                value = payload[0] if len(payload) == 1 else _cmsg_int(payload)
                if not 0 <= value <= 255:
                    raise oserror(errno.EINVAL)
                tos = value
            elif kind == IP_PKTINFO:
                if len(payload) != _PKTINFO4.size:
                    raise oserror(errno.EINVAL)
                index, spec_dst, _addr = _PKTINFO4.unpack(payload)
                pktinfo = (spec_dst, index)
            else:
                raise oserror(errno.EINVAL)
        # Linux skips control messages of other levels
    return ttl, tos, pktinfo


def check_stream_cmsgs(cmsgs: list[Cmsg]) -> None:
    """TCP looks only at SOL_SOCKET messages (``sock_cmsg_send``); unknown ones are EINVAL."""
    for level, kind, _payload in cmsgs:
        if level == SOL_SOCKET and kind not in _SCM_IGNORED:
            raise oserror(errno.EINVAL)


def received_cmsgs(family: int, wanted: int, ttl: int, tos: int, dst: bytes = b"",
                   ifindex: int = 0, spec_dst: bytes = b"") -> list[Cmsg]:
    """The control messages Linux attaches to one datagram, in its order (pktinfo first).

    ``dst`` is the datagram's destination, ``ifindex`` the interface it arrived on and
    ``spec_dst`` the local address a reply would come from (IP_PKTINFO's ipi_spec_dst)."""
    from multisock.stack.datagram import RECV_HOPLIMIT, RECV_PKTINFO, RECV_TCLASS

    out: list[Cmsg] = []
    if family == _socket.AF_INET6:
        if wanted & RECV_PKTINFO:
            addr = dst if len(dst) == 16 else bytes(10) + b"\xff\xff" + dst
            out.append((IPPROTO_IPV6, _socket.IPV6_PKTINFO, _PKTINFO6.pack(addr, ifindex)))
        if wanted & RECV_HOPLIMIT:
            out.append((IPPROTO_IPV6, _socket.IPV6_HOPLIMIT, _INT.pack(ttl)))
        if wanted & RECV_TCLASS:
            out.append((IPPROTO_IPV6, _socket.IPV6_TCLASS, _INT.pack(tos)))
    else:
        if wanted & RECV_PKTINFO:
            out.append((IPPROTO_IP, IP_PKTINFO,
                        _PKTINFO4.pack(ifindex, spec_dst or dst, dst)))
        if wanted & RECV_HOPLIMIT:
            out.append((IPPROTO_IP, _socket.IP_TTL, _INT.pack(ttl)))
        if wanted & RECV_TCLASS:
            out.append((IPPROTO_IP, _socket.IP_TOS, bytes([tos])))
    return out


def fit(cmsgs: list[Cmsg], ancbufsize: int) -> tuple[list[Cmsg], int]:
    """What an ``ancbufsize``-byte control buffer holds, and MSG_CTRUNC if something was cut.

    Linux's ``put_cmsg`` writes a header only if it fits, cuts the data of the message that
    overflows, and moves on by at most CMSG_SPACE; CPython returns the items whose header is
    complete, with the data that is there.
    """
    room = ancbufsize
    out: list[Cmsg] = []
    flags = 0
    for level, kind, payload in cmsgs:
        if room < _HEADER:
            flags |= MSG_CTRUNC
            continue
        full = _socket.CMSG_LEN(len(payload))
        if room < full:
            flags |= MSG_CTRUNC
            out.append((level, kind, payload[: room - _HEADER]))
            room = 0
            continue
        out.append((level, kind, payload))
        room -= min(_socket.CMSG_SPACE(len(payload)), room)
    return out, flags
