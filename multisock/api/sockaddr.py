"""Socket address arguments, checked exactly as CPython's ``getsockaddrarg`` does.

Users rely on the exception *types* (TypeError for a non-tuple, OverflowError for
a port out of range, gaierror for an unknown name), so those mirror CPython;
only the resolution itself goes through multisock's resolver.
"""

from __future__ import annotations

import _socket
from collections.abc import Callable
from typing import Any

from multisock.stack import addresses as A

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6

Resolver = Callable[[str, int], bytes]

# numeric IPv4 text already converted (str -> 4 bytes): the conversion, not a lookup, so
# caching it cannot go stale; names never enter (they go to the resolver every time)
_numeric4: dict[str, bytes] = {}


def _host_text(host: Any) -> str:
    if isinstance(host, str):
        return host
    if isinstance(host, (bytes, bytearray)):
        return bytes(host).decode("ascii")
    raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")


def _port(value: Any, caller: str) -> int:
    if not isinstance(value, int):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    if not 0 <= value <= 0xFFFF:
        raise OverflowError(f"{caller}(): port must be 0-65535.")
    return value


def parse_address(
    family: int, address: Any, caller: str, resolve: Resolver
) -> tuple[bytes, int, int, int]:
    """-> (packed address in the socket's family, port, flowinfo, scope_id)."""
    if family == AF_INET:
        if type(address) is tuple and len(address) == 2 and type(address[0]) is str \
                and type(address[1]) is int and 0 <= address[1] <= 0xFFFF:
            # the usual call, connect(("a.b.c.d", port)), skips the checks it passes
            packed = _numeric4.get(address[0])
            if packed is not None:
                return packed, address[1], 0, 0
        if not isinstance(address, tuple):
            raise TypeError(
                f"{caller}(): AF_INET address must be tuple, not {type(address).__name__}"
            )
        if len(address) != 2:
            raise TypeError("AF_INET address must be a pair (host, port)")
        host = _host_text(address[0])
        port = _port(address[1], caller)
        return resolve_text(host, AF_INET, resolve), port, 0, 0
    if not isinstance(address, tuple):
        raise TypeError(f"{caller}(): AF_INET6 address must be tuple, not {type(address).__name__}")
    if not 2 <= len(address) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    host = _host_text(address[0])
    port = _port(address[1], caller)
    flowinfo = address[2] if len(address) > 2 else 0
    scope_id = address[3] if len(address) > 3 else 0
    if not isinstance(flowinfo, int) or not isinstance(scope_id, int):
        raise TypeError("'str' object cannot be interpreted as an integer")
    if not 0 <= flowinfo <= 0xFFFFF:
        raise OverflowError(f"{caller}(): flowinfo must be 0-1048575.")
    return resolve_text(host, AF_INET6, resolve), port, flowinfo, scope_id


def resolve_text(host: str, family: int, resolve: Resolver) -> bytes:
    """Numeric forms without any lookup, then the resolver; result in ``family``."""
    if host == "":
        return A.ANY4 if family == AF_INET else A.ANY6
    if host == "<broadcast>" and family == AF_INET:
        return b"\xff\xff\xff\xff"
    if family == AF_INET:
        try:
            packed = _socket.inet_aton(host) if _is_dotted(host) else _socket.inet_pton(
                AF_INET, host)
        except OSError:
            pass
        else:
            if len(_numeric4) >= 1024:  # a bound: only numeric text, which never changes
                _numeric4.clear()
            _numeric4[host] = packed
            return packed
    else:
        try:
            return _socket.inet_pton(AF_INET6, host.split("%", 1)[0])
        except OSError:
            pass
    return resolve(host, family)


def _is_dotted(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def format_address(family: int, addr: bytes, port: int) -> tuple[Any, ...]:
    if family == AF_INET:
        return (A.unpack(addr), port)
    if len(addr) == 4:
        addr = A.to_v4mapped(addr)
    return (A.unpack(addr), port, 0, 0)
