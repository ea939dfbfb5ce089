"""The kernel's own sockets, as the gateway uses them.

The gateway must reach the real network whatever activation did to the ``socket`` module:
``_socket.socket`` is the C class, which multisock never patches (``socket.socket`` may be
multisock's own class by the time a gateway opens its first flow).
"""

from __future__ import annotations

import _socket
import struct
from typing import Any

from multisock.stack import addresses as A

_LINGER_ABORT = struct.pack("ii", 1, 0)


def open_socket(family: int, type_: int) -> Any:
    """A non-blocking kernel socket (close-on-exec, as every Python socket is)."""
    sock = _socket.socket(family, type_)
    sock.setblocking(False)
    return sock


def sockaddr(addr: bytes, port: int) -> tuple[int, tuple[Any, ...]]:
    """(family, the address tuple ``connect``/``sendto`` take) for packed ``addr``."""
    if len(addr) == 4:
        return _socket.AF_INET, (A.unpack(addr), port)
    return _socket.AF_INET6, (A.unpack(addr), port, 0, 0)


def abort(sock: Any) -> None:
    """Close with a RST (SO_LINGER {1, 0}): the kernel's way of mirroring an abort."""
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, _LINGER_ABORT)
    except OSError:
        pass
    sock.close()
