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
from typing import NoReturn as _NoReturn

from multisock.api import core as _core
from multisock.api import forking as _forking  # installs the fork hooks
from multisock.api.errors import bad_fd as _bad_fd
from multisock.api.errors import oserror as _oserror

# ---------------------------------------------------------------- the namespace

_OURS = {
    "socket", "SocketType", "create_connection", "create_server", "socketpair", "fromfd",
    "getaddrinfo", "getnameinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
    "gethostname", "getfqdn", "if_nameindex", "if_nametoindex", "if_indextoname",
    "getdefaulttimeout", "setdefaulttimeout", "close", "dup", "send_fds", "recv_fds",
    "has_dualstack_ipv6", "sethostname",
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

    __slots__ = ["__weakref__", "_io_refs", "_closed", "_sock", "_userspace", "_meta",
                 "_released", "_timeout"]

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
        self._released = False
        self._meta: tuple[int, int, int] | None = None
        if fileno is not None and host is None:
            core = _registry_lookup(fileno)
            if core is not None:
                # the same userspace socket under its fd number, as the kernel would give it:
                # no new reference (closing either closes it); family/type/proto as given win
                self._sock: _Any = core
                self._userspace = True
                # a new object of its own, with the default timeout, as CPython's would be
                self._timeout = _core.get_default_timeout()
                if (family, type, proto) != (-1, -1, -1):
                    self._meta = (core.family if family == -1 else family,
                                  core.type if type == -1 else type,
                                  core.proto if proto == -1 else proto)
                return
        if fileno is not None:
            # an fd of the kernel's: let it say what the socket is (like CPython)
            self._sock = _KernelSocket(family, type, proto, fileno)
            self._userspace = False
            return
        if family == -1:
            family = AF_INET
        if type == -1:
            type = SOCK_STREAM
        if proto == -1:
            proto = 0
        if family in _USERSPACE_FAMILIES and not _kernel_protocol(type, proto):
            self._sock = _make_core(family, type, proto, host)
            self._userspace = True
            self._timeout = self._sock.timeout
        else:
            self._sock = _KernelSocket(family, type, proto)
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

    def __del__(self) -> None:
        # like the C socket's finalizer: an unclosed socket warns and is closed
        try:
            if getattr(self, "_closed", True) or self._released:
                return
            if self._userspace and self._sock.closed:
                return
            if self._userspace and _sys.is_finalizing():
                # at interpreter exit, daemon threads stop wherever they are - the network's
                # driver thread possibly inside its lock - so a finalizer that took that lock
                # could hang the exit; the process is going away with everything it holds
                return
            if not self._userspace and self._sock.fileno() < 0:
                return
            import warnings

            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
            self._closed = True
            self._real_close()
        except Exception:
            pass

    def __getstate__(self) -> None:
        raise TypeError(f"cannot pickle {self.__class__.__name__!r} object")

    @property
    def family(self) -> _Any:
        family = self._meta[0] if self._meta is not None else self._sock.family
        return _intenum(family, AddressFamily)

    @property
    def type(self) -> _Any:
        kind = self._meta[1] if self._meta is not None else self._sock.type
        return _intenum(kind & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), SocketKind)

    @property
    def proto(self) -> int:
        return int(self._meta[2] if self._meta is not None else self._sock.proto)

    @property
    def timeout(self) -> float | None:
        return self._timeout if self._userspace else self._sock.gettimeout()

    @property
    def _is_userspace(self) -> bool:
        return self._userspace

    # -- gevent's socket API beyond the stdlib: only under the gevent backend (AttributeError
    # otherwise, as on the stdlib's socket); see multisock.net.gevent_waits

    def _green_events(self) -> _Any:
        events = getattr(self._sock.driver, "events", None)
        if events is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute 'ref' "
                                 "(gevent's, under multisock's gevent backend only)")
        return events(self._sock)

    @property
    def ref(self) -> bool:
        """gevent's ``socket.ref``: whether a greenlet waiting on this socket keeps the hub's
        loop running (``gevent.wait()``); True by default."""
        if not self._userspace:
            return bool(self._sock.ref)
        return bool(self._green_events().ref)

    @ref.setter
    def ref(self, value: bool) -> None:
        if not self._userspace:
            self._sock.ref = value
        else:
            self._green_events().ref = value

    @property
    def _read_event(self) -> _Any:
        """gevent's watcher a reader waits on (``hub.cancel_wait`` takes it); None once closed."""
        if not self._userspace:
            return self._sock._read_event
        return None if self._sock.closed else self._green_events().read

    @property
    def _write_event(self) -> _Any:
        if not self._userspace:
            return self._sock._write_event
        return None if self._sock.closed else self._green_events().write

    @staticmethod
    def _adopt(core: _Any) -> socket:
        """A plain ``socket`` holding ``core`` (the caller has counted the reference)."""
        new = object.__new__(socket)
        new._io_refs = 0
        new._closed = False
        new._sock = core
        new._userspace = True
        new._meta = None
        new._released = False
        new._timeout = core.timeout
        return new

    def _own_timeout(self) -> _Any:
        """The core, its timeout set to this object's (a userspace socket).

        Like CPython's, each object sharing a socket (``dup()``, ``fromfd()``) has a timeout
        of its own while the socket underneath is one: the core's ``timeout`` is what the
        object calling now says. A call takes it once, when it starts (its deadline), so
        two objects with different timeouts may block in two threads at once. The eventfd's
        O_NONBLOCK is shared, as a kernel fd's file status flags are."""
        core = self._sock
        if core.timeout is not self._timeout:
            core.timeout = self._timeout
        return core

    def dup(self) -> socket:
        """Like the stdlib: ``self.__class__(family, type, proto, fileno=<dup>)``, so that a
        subclass's ``__init__`` runs on the copy (PySocks sets its proxy state there)."""
        if self._closed:
            raise _bad_fd()
        if not self._userspace:
            fd = _os.dup(self._sock.fileno())
            sock = self.__class__(self.family, self.type, self.proto, fileno=fd)
            sock.settimeout(self.gettimeout())
            return sock
        core = self._sock
        if core.closed:
            raise _bad_fd()
        core.refs += 1
        if self.__class__ is socket:
            # nothing of a subclass to run: share the core without making its fd (10,000
            # TLS connections, which dup() their plain socket, need not cost 10,000 fds)
            sock = self._adopt(core)
        else:
            # the fd number adopts the core in __init__ (registry lookup); the reference
            # counted above is the one the copy closes
            try:
                sock = self.__class__(self.family, self.type, self.proto,
                                      fileno=core.fileno())
            except BaseException:
                core.refs -= 1
                raise
            if getattr(sock, "_sock", None) is not core:
                core.refs -= 1  # an __init__ that made a socket of its own
        sock.settimeout(self.gettimeout())
        return sock

    def accept(self) -> tuple[socket, _Any]:
        """Like the stdlib: the connection is a plain ``socket``, whatever the listener's
        class (a subclass's ``__init__`` does not run)."""
        if self._closed:
            raise _bad_fd()
        if self._userspace:
            # the core's timeout starts at the default timeout: what the stdlib's
            # setblocking(True) below ensures for a kernel fd
            core, addr = self._own_timeout().accept()
            return self._adopt(core), addr
        fd, addr = self._sock._accept()
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        if _socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr

    def _accept(self) -> tuple[int, _Any]:
        """Like ``_socket.socket._accept``: the new connection's fd number and address."""
        if not self._userspace:
            return self._sock._accept()
        core, addr = self._own_timeout().accept()
        return core.fileno(), addr

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

    # the stdlib's own structure: sendfile() tries _sendfile_use_sendfile and falls back to
    # _sendfile_use_send (file-like objects without a regular file behind them)
    sendfile = _stdlib.socket.sendfile
    _sendfile_use_send = _stdlib.socket._sendfile_use_send  # type: ignore[attr-defined]
    _check_sendfile_params = _stdlib.socket._check_sendfile_params  # type: ignore[attr-defined]

    def _sendfile_use_sendfile(self, file: _Any, offset: int = 0, count: int | None = None) -> int:
        """What os.sendfile() does for a kernel socket: the file's bytes are read from its fd
        at ``offset`` (os.pread, the file position untouched until the end) and go out on
        the stack; the same checks, errors and final seek as the stdlib's method."""
        if not self._userspace:
            return int(_stdlib.socket._sendfile_use_sendfile(  # type: ignore[attr-defined]
                self, file, offset, count))
        giveup = _stdlib._GiveupOnSendfile  # type: ignore[attr-defined]
        self._check_sendfile_params(file, offset, count)
        try:
            fileno = file.fileno()
        except (AttributeError, _io.UnsupportedOperation) as err:
            raise giveup(err) from None  # not a regular file
        try:
            fsize = _os.fstat(fileno).st_size
        except OSError as err:
            raise giveup(err) from None  # not a regular file
        if not fsize:
            return 0
        if self.gettimeout() == 0:
            raise ValueError("non-blocking sockets are not supported")
        total = 0
        try:
            while count is None or total < count:
                want = 65536 if count is None else min(65536, count - total)
                chunk = _os.pread(fileno, want, offset)
                if not chunk:
                    break
                self.sendall(chunk)
                offset += len(chunk)
                total += len(chunk)
            return total
        finally:
            if total > 0 and hasattr(file, "seek"):
                file.seek(offset)

    def _as_stdlib(self) -> _Any:
        """A stdlib socket sharing this kernel socket's fd (for the stdlib's sendfile)."""
        return _stdlib.socket(self.family, self.type, self.proto, fileno=_os.dup(self.fileno()))

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def _real_close(self) -> None:
        if self._released:
            return
        self._released = True
        core = self._sock
        if self._userspace and core.closed:
            # closed through another object holding the same fd (socket(fileno=...),
            # socket.close(fd)): the kernel says EBADF to the second close. Closed through
            # this socket's own ``_sock`` (gevent's pywsgi closes ``socket._sock`` first, then
            # the socket): silent, as closing a gevent socket whose raw socket is closed is
            if getattr(core, "closed_through_fd", False):
                raise _bad_fd()
            return
        core.close()
        if self._userspace and core.closed:
            core.closed_through_fd = True

    def close(self) -> None:
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def detach(self) -> int:
        self._closed = True
        if self._userspace:
            core = self._sock
            fd = core.fileno()
            # the fd (and the socket behind it) now belong to whoever took the number
            self._sock = _Detached(core)
            self._released = True
            return int(fd)
        return int(self._sock.detach())

    def get_inheritable(self) -> bool:
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
        (self._own_timeout() if self._userspace else self._sock).connect(address)

    def connect_ex(self, address: _Any) -> int:
        return int((self._own_timeout() if self._userspace else self._sock).connect_ex(address))

    def listen(self, *backlog: int) -> None:
        for value in backlog:
            _c_int(value)
        self._sock.listen(*backlog)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return (self._own_timeout() if self._userspace else self._sock).recv(bufsize, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, _Any]:
        return (self._own_timeout() if self._userspace else self._sock).recvfrom(bufsize, flags)

    def recv_into(self, buffer: _Any, nbytes: int = 0, flags: int = 0) -> int:
        sock = self._own_timeout() if self._userspace else self._sock
        try:
            return int(sock.recv_into(buffer, nbytes, flags))
        except OSError as exc:
            _raise_without_frames(exc)

    def recvfrom_into(self, buffer: _Any, nbytes: int = 0, flags: int = 0) -> tuple[int, _Any]:
        sock = self._own_timeout() if self._userspace else self._sock
        try:
            return sock.recvfrom_into(buffer, nbytes, flags)
        except OSError as exc:
            _raise_without_frames(exc)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> _Any:
        if self._userspace:
            if not hasattr(bufsize, "__index__") or isinstance(bufsize, float):
                raise TypeError(
                    f"'{type(bufsize).__name__}' object cannot be interpreted as an integer")
            if bufsize < 0:
                raise ValueError("negative buffer size in recvmsg()")
            ancbufsize, flags = _ancbufsize(ancbufsize), _c_int(flags)
            return self._own_timeout().recvmsg(bufsize, ancbufsize, flags)
        return self._sock.recvmsg(bufsize, ancbufsize, flags)

    def recvmsg_into(self, buffers: _Any, ancbufsize: int = 0, flags: int = 0) -> _Any:
        if self._userspace:
            # CPython's checks: an iterable of writable buffers (consumed once), then the ints
            try:
                buffers = list(buffers)
            except TypeError:
                raise TypeError("recvmsg_into() argument 1 must be an iterable") from None
            for buf in buffers:
                try:
                    view = memoryview(buf)
                except TypeError:
                    view = None
                if view is None or view.readonly:
                    raise TypeError("recvmsg_into() argument 1 must be an iterable of "
                                    "single-segment read-write buffers")
            ancbufsize, flags = _ancbufsize(ancbufsize), _c_int(flags)
            return self._own_timeout().recvmsg_into(buffers, ancbufsize, flags)
        return self._sock.recvmsg_into(buffers, ancbufsize, flags)

    def send(self, data: _Any, flags: int = 0, *, timeout: _Any = None) -> int:
        """``send``; ``timeout=`` is gevent's socket's keyword (gevent programs pass it): 0.0
        means do not wait for room, like ``MSG_DONTWAIT``; other values wait by the socket's
        own timeout, as gevent's does."""
        if timeout is not None and timeout == 0.0:
            flags |= _socket.MSG_DONTWAIT
        sock = self._own_timeout() if self._userspace else self._sock
        try:
            return int(sock.send(data, flags))
        except OSError as exc:
            _raise_without_frames(exc)

    def sendall(self, data: _Any, flags: int = 0) -> None:
        sock = self._own_timeout() if self._userspace else self._sock
        try:
            sock.sendall(data, flags)
        except OSError as exc:
            _raise_without_frames(exc)

    def sendto(self, data: _Any, *args: _Any) -> int:
        if not self._userspace:
            return int(self._sock.sendto(data, *args))
        if type(data) is bytes and len(args) == 1:
            flags, address = 0, args[0]  # the usual call, sendto(bytes, address): nothing to check
        else:
            # CPython's argument parsing: sendto(data[, flags], address)
            if len(args) not in (1, 2):
                raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args) + 1} given)")
            _bytes_like(data)
            flags, address = (0, args[0]) if len(args) == 1 else args
            flags = _c_int(flags)
        sock = self._own_timeout()
        try:
            return int(sock.sendto(data, flags, address))
        except OSError as exc:
            _raise_without_frames(exc)

    def sendmsg(self, buffers: _Any, *args: _Any) -> int:
        sock = self._own_timeout() if self._userspace else self._sock
        try:
            return int(sock.sendmsg(buffers, *args))
        except OSError as exc:
            _raise_without_frames(exc)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(_c_int(how))

    def getsockname(self) -> _Any:
        return self._sock.getsockname()

    def getpeername(self) -> _Any:
        return self._sock.getpeername()

    def getsockopt(self, level: int, optname: int, *buflen: int) -> _Any:
        return self._sock.getsockopt(level, optname, *buflen)

    def setsockopt(self, level: int, optname: int, value: _Any, *optlen: int) -> None:
        self._sock.setsockopt(level, optname, value, *optlen)

    def settimeout(self, value: float | None) -> None:
        if not self._userspace:
            self._sock.settimeout(value)
            return
        try:
            self._sock.settimeout(value)
        finally:
            self._timeout = self._sock.timeout  # (set even when the closed fd then fails)

    def gettimeout(self) -> float | None:
        return self._timeout if self._userspace else self._sock.gettimeout()

    def setblocking(self, flag: bool) -> None:
        if not self._userspace:
            self._sock.setblocking(flag)
            return
        try:
            self._sock.setblocking(flag)
        finally:
            self._timeout = self._sock.timeout

    def getblocking(self) -> bool:
        if self._userspace:
            return self._timeout != 0.0
        return bool(self._sock.getblocking())

    if hasattr(_KernelSocket, "sendmsg_afalg"):

        def sendmsg_afalg(self, *args: _Any, **kwargs: _Any) -> int:
            if self._userspace:
                raise _oserror(_errno.EOPNOTSUPP)
            return int(self._sock.sendmsg_afalg(*args, **kwargs))


SocketType = socket


def _c_int(value: _Any) -> int:
    """An argument CPython parses as a C int: TypeError / OverflowError like it."""
    if isinstance(value, float) or not hasattr(value, "__index__"):
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    number = value.__index__()
    if not -(2**31) <= number < 2**31:
        raise OverflowError("signed integer is greater than maximum" if number > 0
                            else "signed integer is less than minimum")
    return int(number)


def _raise_without_frames(exc: OSError) -> _NoReturn:
    """Raise the stack's error afresh, as the same type with the same arguments.

    The stack's frames in its traceback hold views of the caller's buffer, which CPython has
    already released when its C method raises (asyncio clears its bytearray right after a
    failed send; an export would make that fail), so the new error carries neither that
    traceback nor, as its context, the old error.

    Nor does it leave a reference cycle: the new traceback refers to this frame and the
    caller's, so a frame still naming either error would keep every frame below it (the
    program's, with its sockets, connection pools, buffers) alive until the garbage
    collector ran. With TLS that was every would-block ``recv_into``: requests' connections
    stayed open after ``requests.get()`` returned (urllib3 closes a pool's connections when
    the pool is freed). The caller's ``except ... as exc`` name is deleted by Python itself
    when the error leaves its block.
    """
    error = type(exc)(*exc.args)
    if isinstance(exc, BlockingIOError) and isinstance(error, BlockingIOError):
        try:
            error.characters_written = exc.characters_written
        except AttributeError:
            pass
    try:
        raise error
    finally:
        error.__context__ = None  # raised while the caller handles exc: not its context
        del error, exc


def _ancbufsize(value: _Any) -> int:
    number = _c_int(value)
    if number < 0:
        raise ValueError("invalid ancillary data buffer length")
    return number


def _bytes_like(data: _Any) -> None:
    """TypeError with CPython's words when ``data`` is not a bytes-like object."""
    try:
        memoryview(data)
    except TypeError:
        raise TypeError(
            f"a bytes-like object is required, not '{type(data).__name__}'") from None


def _kernel_protocol(type: int, proto: int) -> bool:
    """INET protocols multisock does not implement go to the kernel, like other families."""
    return proto in _KERNEL_PROTOCOLS


_KERNEL_PROTOCOLS = frozenset(
    getattr(_socket, name) for name in ("IPPROTO_UDPLITE", "IPPROTO_SCTP")
    if hasattr(_socket, name)
)


class _Detached:
    """What a wrapper holds after ``detach()``: every call fails with EBADF, like fd -1."""

    closed = True
    refs = 0

    def __init__(self, core: _Any) -> None:
        self.family, self.type, self.proto = core.family, core.type, core.proto
        self.timeout = core.timeout

    def fileno(self) -> int:
        return -1

    def gettimeout(self) -> float | None:
        return self.timeout

    def settimeout(self, value: _Any) -> None:
        self.timeout = _core.check_timeout(value)
        raise _bad_fd()

    def setblocking(self, flag: bool) -> None:
        self.timeout = None if flag else 0.0
        raise _bad_fd()

    def getblocking(self) -> bool:
        return self.timeout != 0.0

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> _Any:
        def fail(*args: _Any, **kwargs: _Any) -> _Any:
            raise _bad_fd()

        return fail


# --------------------------------------------------------------- core registry

_cores_by_fd = _core.cores_by_fd


def _kernel_socket_class() -> _Any:
    return _KernelSocket  # read at fork time: multisock.green may have swapped it


_forking.kernel_socket_class = _kernel_socket_class


def _registry_lookup(fd: int) -> _Any:
    return _cores_by_fd.get(fd)


# the classes _make_core needs, imported on first use (not at import: see _lazy) and kept
# here, as a function-level import costs ~1 us on every call
_lazy: dict[str, _Any] = {}


def _lazy_load(name: str) -> _Any:
    found: _Any
    if name == "stream":
        from multisock.api import stream

        found = stream.StreamCore
    elif name == "dgram":
        from multisock.api import dgram

        found = dgram.DatagramCore
    else:
        from multisock import runtime

        found = runtime.default_host
    _lazy[name] = found
    return found


def _make_core(family: int, type: int, proto: int, host: _Any) -> _Any:
    if host is None:
        host = (_lazy.get("default_host") or _lazy_load("default_host"))()
    base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
    core: _Any
    if base_type == SOCK_DGRAM:
        if proto not in (0, _socket.IPPROTO_UDP, _socket.IPPROTO_ICMP, _socket.IPPROTO_ICMPV6):
            raise _oserror(_errno.EPROTONOSUPPORT)
        if proto == _socket.IPPROTO_ICMP and family != AF_INET:
            raise _oserror(_errno.EPROTONOSUPPORT)
        if proto == _socket.IPPROTO_ICMPV6 and family != AF_INET6:
            raise _oserror(_errno.EPROTONOSUPPORT)
        core = (_lazy.get("dgram") or _lazy_load("dgram"))(host, family, type, proto)
    elif base_type == SOCK_STREAM:
        if proto not in (0, _socket.IPPROTO_TCP):
            raise _oserror(_errno.EPROTONOSUPPORT)
        core = (_lazy.get("stream") or _lazy_load("stream"))(host, family, type, proto)
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
        # os.dup() of a userspace socket's fd: one more reference to the same socket
        core.refs += 1
        new = socket.__new__(socket)
        new._io_refs = 0
        new._closed = False
        new._released = False
        new._meta = None
        new._sock = core
        new._userspace = True
        new._timeout = _core.get_default_timeout()  # a new object: the default, as CPython's
        return new
    return socket(family, type, proto, _os.dup(fd))


def close(fd: int) -> None:
    core = _registry_lookup(fd)
    if core is not None:
        core.close()
        core.closed_through_fd = True  # the socket object's own close() now says EBADF
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
from multisock.api.functions import sethostname as sethostname  # noqa: E402
from multisock.api.functions import socketpair as socketpair  # noqa: E402
