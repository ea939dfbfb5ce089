"""getsockopt/setsockopt value encoding, as Linux and CPython do it.

CPython passes an ``int`` or a bytes-like buffer to setsockopt and returns an
``int`` from getsockopt, or raw bytes when ``buflen`` is given. Linux doubles
SO_RCVBUF/SO_SNDBUF on set (to account for bookkeeping) and clamps them to a
minimum; programs read back the doubled value, so we do the same.
"""

from __future__ import annotations

import _socket
import errno
import struct
import sys
from typing import Any

from multisock.api.errors import oserror

SOL_SOCKET = _socket.SOL_SOCKET
IPPROTO_IP = _socket.IPPROTO_IP
IPPROTO_IPV6 = _socket.IPPROTO_IPV6
IPPROTO_TCP = _socket.IPPROTO_TCP
IPPROTO_UDP = _socket.IPPROTO_UDP

MIN_RCVBUF = 2304  # Linux SOCK_MIN_RCVBUF
MIN_SNDBUF = 4608  # Linux SOCK_MIN_SNDBUF
MAX_BUF = 4 * 1024 * 1024 * 2  # what net.core.[rw]mem_max allows, doubled

_INT = struct.Struct("i")
_LINGER = struct.Struct("ii")
_TIMEVAL = struct.Struct("ll")


def as_int(value: Any) -> int:
    """setsockopt's value as an int: an int, or a buffer holding a C int (or shorter)."""
    if isinstance(value, int):
        return value
    if value is None:
        raise TypeError("setsockopt() value must be an integer or a bytes-like object")
    try:
        raw = bytes(memoryview(value))
    except TypeError:
        raise TypeError(
            f"a bytes-like object is required, not '{type(value).__name__}'"
        ) from None
    if len(raw) >= 4:
        return int(_INT.unpack_from(raw)[0])
    if len(raw) == 1:
        return raw[0]
    raise oserror(errno.EINVAL)


def as_bool(value: Any) -> bool:
    return as_int(value) != 0


def buf_size(value: Any, minimum: int) -> int:
    size = as_int(value)
    return max(minimum, min(size * 2 if size < MAX_BUF // 2 else MAX_BUF, MAX_BUF))


CA_NAME_MAX = 16  # Linux TCP_CA_NAME_MAX: a name is at most 15 bytes


def congestion_name(value: Any) -> str:
    """TCP_CONGESTION's value as Linux reads it: the first 15 bytes, up to a NUL (an int
    is its C bytes, as CPython passes it); empty is EINVAL. Whether such an algorithm
    exists is the caller's question (ENOENT)."""
    if isinstance(value, int):
        raw = value.to_bytes(4, sys.byteorder, signed=True)  # (OverflowError, as CPython)
    else:
        try:
            raw = bytes(memoryview(value))
        except TypeError:
            raise TypeError(
                f"a bytes-like object is required, not '{type(value).__name__}'"
            ) from None
    if not raw:
        raise oserror(errno.EINVAL)
    return raw[: CA_NAME_MAX - 1].split(b"\0", 1)[0].decode("latin-1")


def linger_decode(value: Any) -> float | None:
    if isinstance(value, int):
        raise oserror(errno.EINVAL)
    raw = bytes(memoryview(value))
    if len(raw) < _LINGER.size:
        raise oserror(errno.EINVAL)
    onoff, seconds = _LINGER.unpack_from(raw)
    return float(seconds) if onoff else None


def linger_encode(value: float | None) -> bytes:
    return _LINGER.pack(0 if value is None else 1, 0 if value is None else int(value))


def timeval_decode(value: Any) -> float | None:
    raw = bytes(memoryview(value)) if not isinstance(value, int) else b""
    if len(raw) < _TIMEVAL.size:
        raise oserror(errno.EINVAL)
    sec, usec = _TIMEVAL.unpack_from(raw)
    total = sec + usec / 1e6
    return total if total > 0 else None


def timeval_encode(value: float | None) -> bytes:
    if value is None:
        return _TIMEVAL.pack(0, 0)
    return _TIMEVAL.pack(int(value), int(round((value - int(value)) * 1e6)))


def reply(value: int | bytes, buflen: int | None) -> int | bytes:
    """getsockopt's return: an int, or bytes of at most ``buflen`` when asked."""
    if buflen is None:
        if isinstance(value, bytes):
            return value
        return value
    if buflen < 0 or buflen > 1024:
        raise OSError(errno.EINVAL, "getsockopt buflen out of range")
    raw = value if isinstance(value, bytes) else _INT.pack(value)
    return raw[:buflen]


# ---------------------------------------------------------- IP-level options
# Shared by every userspace socket kind: ``target`` is the protocol state object
# (a datagram endpoint or a TCP control block) with ``ttl``, ``tos``, ``v6only``
# and ``local`` attributes.


def set_ip_option(target: Any, family: int, level: int, option: int, value: Any) -> bool:
    """Apply IP_TTL/IP_TOS/IPV6_V6ONLY/IPV6_UNICAST_HOPS; False if not one of those."""
    if level == IPPROTO_IP and option == _socket.IP_TTL:
        ttl = as_int(value)
        if not (1 <= ttl <= 255 or ttl == -1):
            raise oserror(errno.EINVAL)
        target.ttl = None if ttl == -1 else ttl
    elif level == IPPROTO_IP and option == _socket.IP_TOS:
        target.tos = as_int(value) & 0xFF
    elif level == IPPROTO_IPV6 and family == _socket.AF_INET6 and option == _socket.IPV6_V6ONLY:
        if target.local is not None:
            raise oserror(errno.EINVAL)
        target.v6only = as_bool(value)
    elif level == IPPROTO_IPV6 and family == _socket.AF_INET6 and option == _socket.IPV6_TCLASS:
        tclass = as_int(value)
        if not -1 <= tclass <= 255:
            raise oserror(errno.EINVAL)
        target.tos = 0 if tclass == -1 else tclass
    elif (level == IPPROTO_IPV6 and family == _socket.AF_INET6
          and option == _socket.IPV6_UNICAST_HOPS):
        hops = as_int(value)
        if not (0 <= hops <= 255 or hops == -1):
            raise oserror(errno.EINVAL)
        target.ttl = None if hops == -1 else hops
    else:
        return False
    return True


def get_ip_option(target: Any, family: int, level: int, option: int, default_ttl: int) -> int | None:
    """The value of one of the options :func:`set_ip_option` handles, else None."""
    if level == IPPROTO_IP and option == _socket.IP_TTL or (
            level == IPPROTO_IPV6 and family == _socket.AF_INET6
            and option == _socket.IPV6_UNICAST_HOPS):
        return int(target.ttl) if target.ttl is not None else default_ttl
    if level == IPPROTO_IP and option == _socket.IP_TOS or (
            level == IPPROTO_IPV6 and family == _socket.AF_INET6
            and option == _socket.IPV6_TCLASS):
        return int(target.tos)
    if level == IPPROTO_IPV6 and family == _socket.AF_INET6 and option == _socket.IPV6_V6ONLY:
        return int(bool(target.v6only))
    return None
