"""``multisock.socket``: the stdlib ``socket`` module's surface over the userspace stack.

Every public name of CPython's :mod:`socket` exists here. Constants, enums and
exception classes *are* the stdlib's objects (copied from the module, never
retyped), so ``except socket.timeout`` and ``socket.AF_INET == 2`` hold whichever
module the program imported. The class :class:`socket` sends AF_INET/AF_INET6
stream and datagram traffic through the virtual host's stack and every other
family (AF_UNIX, AF_NETLINK, AF_PACKET...) through a real kernel socket.
"""

from __future__ import annotations

import _socket
import errno as _errno
import io as _io
import os as _os
import socket as _stdlib
import sys as _sys
from typing import Any as _Any

from multisock.api import core as _core
from multisock.api.errors import bad_fd as _bad_fd
from multisock.api.errors import oserror as _oserror

# ---------------------------------------------------------------- the namespace

_OURS = {
    "socket", "SocketType", "create_connection", "create_server", "socketpair", "fromfd",
    "getaddrinfo", "getnameinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
    "gethostname", "getfqdn", "if_nameindex", "if_nametoindex", "if_indextoname",
    "getdefaulttimeout", "setdefaulttimeout", "close", "dup", "send_fds", "recv_fds",
    "has_dualstack_ipv6",
}
for _name in dir(_stdlib):
    if _name.startswith("__") or _name in _OURS:
        continue
    globals()[_name] = getattr(_stdlib, _name)
del _name

__all__ = sorted(
    set(getattr(_stdlib, "__all__", [])) | {n for n in _OURS if hasattr(_stdlib, n)}
)

AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_RAW = _socket.SOCK_RAW
SOCK_NONBLOCK = getattr(_socket, "SOCK_NONBLOCK", 0)
SOCK_CLOEXEC = getattr(_socket, "SOCK_CLOEXEC", 0)
_USERSPACE_FAMILIES = (AF_INET, AF_INET6)
_KernelSocket = _socket.socket
AddressFamily = _stdlib.AddressFamily
SocketKind = _stdlib.SocketKind
SocketIO = _stdlib.SocketIO
error = _stdlib.error
timeout = _stdlib.timeout
gaierror = _stdlib.gaierror
herror = _stdlib.herror


def _intenum(value: int, enum_klass: _Any) -> _Any:
    try:
        return enum_klass(value)
    except ValueError:
        return value


# ------------------------------------------------------------------- the class


class socket:
    """A socket: userspace for AF_INET/AF_INET6, the kernel's for everything else."""

    __slots__ = ["__weakref__", "_io_refs", "_closed", "_sock", "_userspace"]

    def __init__(
        self,
        family: int = -1,
        type: int = -1,
        proto: int = -1,
        fileno: int | None = None,
        *,
        host: _Any = None,
    ) -> None:
        self._io_refs = 0
        self._closed = False
        if fileno is not None and host is None:
            core = _registry_lookup(fileno)
            if core is not None:
                self._sock: _Any = core
                self._userspace = True
                return
        if family == -1:
            family = AF_INET
        if type == -1:
            type = SOCK_STREAM
        if proto == -1:
            proto = 0
        if family in _USERSPACE_FAMILIES and fileno is None:
            self._sock = _make_core(family, type, proto, host)
            self._userspace = True
        else:
            self._sock = _KernelSocket(family, type, proto, fileno)
            self._userspace = False

    # -- plumbing shared with the stdlib class

    def __enter__(self) -> socket:
        return self

    def __exit__(self, *args: object) -> None:
        if not self._closed:
            self.close()

    def __repr__(self) -> str:
        closed = getattr(self, "_closed", False)
        s = (
            f"<{self.__class__.__module__}.{self.__class__.__qualname__}"
            f"{' [closed]' if closed else ''} fd={self.fileno()}, "
            f"family={self.family}, type={self.type}, proto={self.proto}"
        )
        if not closed:
            try:
                laddr = self.getsockname()
                if laddr:
                    s += f", laddr={laddr}"
            except (OSError, TypeError):
                pass
            try:
                raddr = self.getpeername()
                if raddr:
                    s += f", raddr={raddr}"
            except (OSError, TypeError):
                pass
        return s + ">"

    def __getstate__(self) -> None:
        raise TypeError(f"cannot pickle {self.__class__.__name__!r} object")

    @property
    def family(self) -> _Any:
        return _intenum(self._sock.family, AddressFamily)

    @property
    def type(self) -> _Any:
        return _intenum(self._sock.type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), SocketKind)

    @property
    def proto(self) -> int:
        return int(self._sock.proto)

    @property
    def timeout(self) -> float | None:
        return self._sock.gettimeout()

    @property
    def _is_userspace(self) -> bool:
        return self._userspace

    def _wrap(self, sock: _Any) -> socket:
        new = object.__new__(self.__class__)
        new._io_refs = 0
        new._closed = False
        new._sock = sock
        new._userspace = self._userspace
        return new

    def dup(self) -> socket:
        if self._closed:
            raise _bad_fd()
        if self._userspace:
            self._sock.refs += 1
            return self._wrap(self._sock)
        fd = _os.dup(self._sock.fileno())
        sock = self.__class__(self.family, self.type, self.proto, fileno=fd)
        sock.settimeout(self.gettimeout())
        return sock

    def accept(self) -> tuple[socket, _Any]:
        if self._closed:
            raise _bad_fd()
        if self._userspace:
            core, addr = self._sock.accept()
            return self._wrap(core), addr
        fd, addr = self._sock._accept()
        sock = self.__class__(self.family, self.type, self.proto, fileno=fd)
        if _socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> _Any:
        """Like the stdlib: a SocketIO wrapped in the buffering/text layers ``mode`` asks for."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing = "w" in mode
        reading = "r" in mode or not writing
        assert reading or writing
        binary = "b" in mode
        rawmode = ("r" if reading else "") + ("w" if writing else "")
        raw = SocketIO(self, rawmode)  # type: ignore[arg-type]
        self._io_refs += 1
        if buffering is None:
            buffering = -1
        if buffering < 0:
            buffering = _io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        buffer: _Any
        if reading and writing:
            buffer = _io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffer = _io.BufferedReader(raw, buffering)
        else:
            buffer = _io.BufferedWriter(raw, buffering)
        if binary:
            return buffer
        encoding = _io.text_encoding(encoding)
        text = _io.TextIOWrapper(buffer, encoding, errors, newline)
        text.mode = mode  # type: ignore[misc]
        return text

    def sendfile(self, file: _Any, offset: int = 0, count: int | None = None) -> int:
        """Send a file's bytes with send(); userspace sockets have no kernel sendfile."""
        if "b" not in getattr(file, "mode", "b"):
            raise ValueError("file should be opened in binary mode")
        if not self.type & SOCK_STREAM:
            raise ValueError("only SOCK_STREAM type sockets are supported")
        if count is not None:
            if not isinstance(count, int):
                raise TypeError(f"count must be a positive integer (got {count!r})")
            if count <= 0:
                raise ValueError(f"count must be a positive integer (got {count!r})")
        if not self._userspace:
            return _stdlib.socket.sendfile(self._as_stdlib(), file, offset, count)
        if offset:
            file.seek(offset)
        blocksize = min(count, 65536) if count else 65536
        total = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total, blocksize)
                    if blocksize <= 0:
                        break
                data = memoryview(file.read(blocksize))
                if not data:
                    break
                self.sendall(data)
                total += len(data)
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset + total)

    def _as_stdlib(self) -> _Any:
        """A stdlib socket sharing this kernel socket's fd (for the stdlib's sendfile)."""
        return _stdlib.socket(self.family, self.type, self.proto, fileno=_os.dup(self.fileno()))

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def _real_close(self) -> None:
        self._sock.close()

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def detach(self) -> int:
        self._closed = True
        if self._userspace:
            fd = self._sock.fileno()
            return int(fd)
        return int(self._sock.detach())

    def get_inheritable(self) -> bool:
        if self._userspace:
            return False
        return _os.get_inheritable(self.fileno())

    def set_inheritable(self, inheritable: bool) -> None:
        if self._userspace:
            if self._sock.closed:
                raise _bad_fd()
            _os.set_inheritable(self.fileno(), inheritable)
            return
        _os.set_inheritable(self.fileno(), inheritable)

    # -- the C-level methods, delegated

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def bind(self, address: _Any) -> None:
        self._sock.bind(address)

    def connect(self, address: _Any) -> None:
        self._sock.connect(address)

    def connect_ex(self, address: _Any) -> int:
        return int(self._sock.connect_ex(address))

    def listen(self, *backlog: int) -> None:
        self._sock.listen(*backlog)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._sock.recv(bufsize, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, _Any]:
        return self._sock.recvfrom(bufsize, flags)

    def recv_into(self, buffer: _Any, nbytes: int = 0, flags: int = 0) -> int:
        return int(self._sock.recv_into(buffer, nbytes, flags))

    def recvfrom_into(self, buffer: _Any, nbytes: int = 0, flags: int = 0) -> tuple[int, _Any]:
        return self._sock.recvfrom_into(buffer, nbytes, flags)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> _Any:
        return self._sock.recvmsg(bufsize, ancbufsize, flags)

    def recvmsg_into(self, buffers: _Any, ancbufsize: int = 0, flags: int = 0) -> _Any:
        return self._sock.recvmsg_into(buffers, ancbufsize, flags)

    def send(self, data: _Any, flags: int = 0) -> int:
        return int(self._sock.send(data, flags))

    def sendall(self, data: _Any, flags: int = 0) -> None:
        self._sock.sendall(data, flags)

    def sendto(self, data: _Any, *args: _Any) -> int:
        return int(self._sock.sendto(data, *args))

    def sendmsg(self, buffers: _Any, *args: _Any) -> int:
        return int(self._sock.sendmsg(buffers, *args))

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def getsockname(self) -> _Any:
        return self._sock.getsockname()

    def getpeername(self) -> _Any:
        return self._sock.getpeername()

    def getsockopt(self, level: int, optname: int, *buflen: int) -> _Any:
        return self._sock.getsockopt(level, optname, *buflen)

    def setsockopt(self, level: int, optname: int, value: _Any, *optlen: int) -> None:
        self._sock.setsockopt(level, optname, value, *optlen)

    def settimeout(self, value: float | None) -> None:
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def getblocking(self) -> bool:
        return bool(self._sock.getblocking())

    if hasattr(_KernelSocket, "sendmsg_afalg"):

        def sendmsg_afalg(self, *args: _Any, **kwargs: _Any) -> int:
            if self._userspace:
                raise _oserror(_errno.EOPNOTSUPP)
            return int(self._sock.sendmsg_afalg(*args, **kwargs))


SocketType = socket


# --------------------------------------------------------------- core registry

_cores_by_fd: dict[int, _Any] = {}


def _registry_lookup(fd: int) -> _Any:
    return _cores_by_fd.get(fd)


def _make_core(family: int, type: int, proto: int, host: _Any) -> _Any:
    if host is None:
        from multisock.runtime import default_host

        host = default_host()
    base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
    core: _Any
    if base_type == SOCK_DGRAM:
        if proto not in (0, _socket.IPPROTO_UDP, _socket.IPPROTO_ICMP, _socket.IPPROTO_ICMPV6):
            raise _oserror(_errno.EPROTONOSUPPORT)
        if proto == _socket.IPPROTO_ICMP and family != AF_INET:
            raise _oserror(_errno.EPROTONOSUPPORT)
        if proto == _socket.IPPROTO_ICMPV6 and family != AF_INET6:
            raise _oserror(_errno.EPROTONOSUPPORT)
        from multisock.api.dgram import DatagramCore

        core = DatagramCore(host, family, type, proto)
    elif base_type == SOCK_STREAM:
        if proto not in (0, _socket.IPPROTO_TCP):
            raise _oserror(_errno.EPROTONOSUPPORT)
        from multisock.api.stream import StreamCore

        core = StreamCore(host, family, type, proto)
    elif base_type == SOCK_RAW and (
        (family == AF_INET and proto == _socket.IPPROTO_ICMP)
        or (family == AF_INET6 and proto == _socket.IPPROTO_ICMPV6)
    ):
        from multisock.api.dgram import DatagramCore

        core = DatagramCore(host, family, type, proto)
    else:
        # raw sockets of other protocols are not modelled (Linux would need CAP_NET_RAW too)
        raise _oserror(_errno.EPROTONOSUPPORT if base_type == SOCK_RAW else _errno.EINVAL)
    if type & SOCK_NONBLOCK:
        core.setblocking(False)
    return core


# ------------------------------------------------------------ module functions


def getdefaulttimeout() -> float | None:
    return _core.get_default_timeout()


def setdefaulttimeout(timeout: float | None) -> None:
    _core.set_default_timeout(timeout)
    _socket.setdefaulttimeout(timeout)


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    core = _registry_lookup(fd)
    if core is not None:
        core.refs += 1
        new = socket.__new__(socket)
        new._io_refs = 0
        new._closed = False
        new._sock = core
        new._userspace = True
        return new
    return socket(family, type, proto, _os.dup(fd))


def close(fd: int) -> None:
    core = _registry_lookup(fd)
    if core is not None:
        core.close()
        return
    _socket.close(fd)


def dup(fd: int) -> int:
    return _socket.dup(fd)


if _sys.platform != "win32":
    send_fds = _stdlib.send_fds
    recv_fds = _stdlib.recv_fds


from multisock.api.functions import (  # noqa: E402 - they import this module's class lazily
    create_connection as create_connection,
)
from multisock.api.functions import create_server as create_server  # noqa: E402
from multisock.api.functions import getaddrinfo as getaddrinfo  # noqa: E402
from multisock.api.functions import getfqdn as getfqdn  # noqa: E402
from multisock.api.functions import gethostbyaddr as gethostbyaddr  # noqa: E402
from multisock.api.functions import gethostbyname as gethostbyname  # noqa: E402
from multisock.api.functions import gethostbyname_ex as gethostbyname_ex  # noqa: E402
from multisock.api.functions import gethostname as gethostname  # noqa: E402
from multisock.api.functions import getnameinfo as getnameinfo  # noqa: E402
from multisock.api.functions import has_dualstack_ipv6 as has_dualstack_ipv6  # noqa: E402
from multisock.api.functions import if_indextoname as if_indextoname  # noqa: E402
from multisock.api.functions import if_nameindex as if_nameindex  # noqa: E402
from multisock.api.functions import if_nametoindex as if_nametoindex  # noqa: E402
from multisock.api.functions import socketpair as socketpair  # noqa: E402
