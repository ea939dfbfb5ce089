"""``ssl.SSLSocket`` for userspace sockets: what ``SSLContext.wrap_socket`` returns for them.

The class *is* an ``ssl.SSLSocket`` subclass, so ``isinstance(s, ssl.SSLSocket)``
and ``isinstance(s, socket.socket)`` hold as they do for kernel TLS sockets
(ftplib, asyncio, dnspython and others test them). Its C part (``_socket.socket``)
is never opened: every method that would touch a kernel fd is redefined here to
go to the wrapped multisock socket, and the TLS work goes through a
:class:`~multisock.tls.channel.TlsChannel`. ``self._sslobj`` is the same kind of
C object the stdlib class holds, so the inherited read-only methods
(``getpeercert``, ``cipher``, ``version``, ``selected_alpn_protocol``,
``shared_ciphers``, ``compression``, ``get_channel_binding``, ``session``...)
are the stdlib's own code.
"""

from __future__ import annotations

import _socket
import errno
import ssl
import sys
import warnings
import weakref
from typing import Any

from multisock.api.core import MSG_DONTWAIT, MSG_PEEK
from multisock.tls.channel import Deadline, TlsChannel

_combined: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def sslsocket_class_for(context: ssl.SSLContext) -> type[SSLSocket]:
    """The class to build for ``context``: ours, or, when the program set its own
    ``sslsocket_class`` (an ``ssl.SSLSocket`` subclass), a class deriving from both, its
    own first, so that its overrides run and reach ours through ``super()``."""
    custom = getattr(context, "sslsocket_class", None)
    if custom is None or custom is ssl.SSLSocket or not isinstance(custom, type):
        return SSLSocket
    if issubclass(custom, SSLSocket):
        return custom
    cls = _combined.get(custom)
    if cls is None:
        cls = type(custom.__name__, (custom, SSLSocket), {
            "__module__": custom.__module__, "__qualname__": custom.__qualname__,
            "__doc__": custom.__doc__})
        _combined[custom] = cls
    return cls


def is_userspace_stream(sock: Any) -> bool:
    """A multisock socket whose bytes travel on the userspace stack (not a kernel fd)."""
    from multisock.socket import socket as msocket

    return isinstance(sock, msocket) and bool(sock._is_userspace)


def _stdlib_sslsocket() -> Any:
    """The stdlib's ``ssl.SSLSocket`` (a ``_socket.socket`` subclass), even when gevent has
    replaced ``ssl.SSLSocket`` with its own class before this module was imported."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("ssl"):
        return gevent_monkey.get_original("ssl", "SSLSocket")
    return ssl.SSLSocket


class SSLSocket(_stdlib_sslsocket()):  # type: ignore[misc]
    """TLS over a multisock stream socket, client or server side, like ``ssl.SSLSocket``."""

    # what the stdlib class sets in _create (typeshed does not declare the private ones)
    _io_refs: int
    _context: Any
    _session: Any
    _sslobj: Any
    _connected: bool
    do_handshake_on_connect: bool
    suppress_ragged_eofs: bool
    _plain: Any  # the multisock.socket.socket carrying the ciphertext
    _sock: Any  # its core: select/selectors find the userspace socket through it
    _userspace: bool
    _channel: TlsChannel | None
    _leftover: bytes  # clear bytes that followed the peer's close_notify

    @classmethod
    def _create(cls, sock: Any, server_side: bool = False,
                do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                server_hostname: str | bytes | None = None, context: Any = None,
                session: Any = None) -> SSLSocket:
        """``SSLContext.wrap_socket``'s work, with the stdlib's checks and errors."""
        if sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_TYPE) != _socket.SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        if server_side:
            if server_hostname:
                raise ValueError("server_hostname can only be specified in client mode")
            if session is not None:
                raise ValueError("session can only be specified in client mode")
        if context.check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")

        if issubclass(cls, _socket.socket):
            self = _socket.socket.__new__(cls)  # the C socket stays unopened (fd -1)
        else:  # gevent's ssl.SSLSocket wraps instead of subclassing: nothing to leave unopened
            self = object.__new__(cls)
        self._io_refs = 0
        self._closed = False
        sock_timeout = sock.gettimeout()
        plain = sock.dup()  # take the core over; the caller's object ends up closed,
        sock.close()  # as detach() leaves it in the stdlib
        self._plain = plain
        self._sock = plain._sock
        self._userspace = True
        self._channel = None
        self._leftover = b""
        self._context = context
        self._session = session
        self._sslobj = None
        self.server_side = server_side
        self.server_hostname = context._encode_hostname(server_hostname)
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs

        try:
            plain.getpeername()
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
            connected = False
            try:
                early = plain.recv(1, MSG_DONTWAIT)
            except OSError as exc2:
                if exc2.errno not in (errno.ENOTCONN, errno.EINVAL, errno.EAGAIN):
                    raise
                early = b""
            if early:
                # the stdlib's guard: clear bytes must not pass as having come over TLS
                reason = "Closed before TLS handshake with data in recv buffer."
                error = ssl.SSLError(exc.errno, reason)
                error.reason = reason
                error.library = None  # type: ignore[assignment]
                try:
                    self.close()
                except OSError:
                    pass
                raise error from None
        else:
            connected = True

        self.settimeout(sock_timeout)
        self._connected = connected
        if connected:
            try:
                self._start_tls()
                if do_handshake_on_connect:
                    if self.gettimeout() == 0.0:
                        raise ValueError("do_handshake_on_connect should not be specified "
                                         "for non-blocking sockets")
                    self.do_handshake()
            except (OSError, ValueError):
                self.close()
                raise
        return self

    def __del__(self) -> None:
        """Like the C socket's finalizer: an unclosed TLS socket warns, naming itself, and is
        closed (the socket under it is then closed too, so it does not warn again)."""
        try:
            if getattr(self, "_closed", True) or getattr(self, "_plain", None) is None:
                return
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2, source=self)
            self._closed = True
            self._real_close()
        except Exception:
            pass

    def _start_tls(self) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = self._context._wrap_bio(
            incoming, outgoing, self.server_side, self.server_hostname,
            owner=self, session=self._session,
        )
        self._sslobj = sslobj
        self._channel = TlsChannel(self._plain, sslobj, incoming, outgoing)

    def _checkClosed(self, msg: str | None = None) -> None:  # noqa: N802 - stdlib name
        """As in the stdlib: a hook that checks nothing (a closed core raises EBADF itself)."""

    def _check_connected(self) -> None:
        if not self._connected:
            self.getpeername()  # ENOTCONN if it really is not

    def _active(self) -> TlsChannel:
        channel = self._channel
        if self._sslobj is None or channel is None:
            raise ValueError("No SSL wrapper around " + str(self))
        return channel

    def _deadline(self) -> Deadline:
        return Deadline(self._plain.gettimeout())

    # ------------------------------------------------------------------- TLS

    def do_handshake(self, block: bool = False) -> None:
        self._check_connected()
        deadline = self._deadline()
        if deadline.nonblocking and block:
            deadline = Deadline(None)
        channel = self._active()
        channel.run(self._sslobj.do_handshake, "handshake", deadline, flush=True)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:  # noqa: A002 - stdlib name
        """Read up to ``len`` bytes (into ``buffer`` if given); b'' / 0 at EOF."""
        self._checkClosed()
        if self._sslobj is None or self._channel is None:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        sslobj = self._sslobj
        if buffer is not None:
            def op() -> Any:
                return sslobj.read(len, buffer)
        else:
            def op() -> Any:
                return sslobj.read(len)
        try:
            return self._channel.run(op, "read", self._deadline(), flush=False,
                                     io_error_is_eof=True)
        except ssl.SSLError as exc:
            if exc.args[0] == ssl.SSL_ERROR_EOF and self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""
            raise

    def write(self, data: Any) -> int:
        """Write ``data``; returns how many bytes went (all of them unless non-blocking)."""
        self._checkClosed()
        if self._sslobj is None or self._channel is None:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        return self._channel.write(data, self._deadline())

    def unwrap(self) -> SSLSocket:
        """Send close_notify, wait for the peer's, and go on in clear on the same socket."""
        channel = self._active()
        channel.run(self._sslobj.shutdown, None, self._deadline(), flush=True)
        self._leftover = channel.take_leftover()
        self._sslobj = None
        self._channel = None
        self._plain._sock.set_held_above(bool(self._leftover))
        return self

    def pending(self) -> int:
        self._checkClosed()
        if self._sslobj is not None:
            return int(self._sslobj.pending())
        return 0

    # ------------------------------------------------------------------- data

    def send(self, data: Any, flags: int = 0) -> int:
        self._checkClosed()
        if self._sslobj is not None:
            if flags != 0:
                raise ValueError(f"non-zero flags not allowed in calls to send() on {type(self)}")
            return self.write(data)
        return int(self._plain.send(data, flags))

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._checkClosed()
        if self._sslobj is None:
            self._plain.sendall(data, flags)
            return
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to sendall() on {type(self)}")
        with memoryview(data) as view, view.cast("B") as octets:
            count = 0
            while count < len(octets):
                count += self.send(octets[count:])

    def sendto(self, data: Any, flags_or_addr: Any, addr: Any = None) -> int:
        self._checkClosed()
        if self._sslobj is not None:
            raise ValueError(f"sendto not allowed on instances of {type(self)}")
        if addr is None:
            return int(self._plain.sendto(data, flags_or_addr))
        return int(self._plain.sendto(data, flags_or_addr, addr))

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        if self._sslobj is not None:
            # the stdlib's portable loop over send() (os.sendfile needs a kernel fd)
            send_file = getattr(super(), "_sendfile_use_send")  # noqa: B009
            return int(send_file(file, offset, count))
        return int(self._plain.sendfile(file, offset, count))

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        self._checkClosed()
        if self._sslobj is not None:
            if flags != 0:
                raise ValueError(f"non-zero flags not allowed in calls to recv() on {type(self)}")
            return bytes(self.read(buflen))
        if self._leftover:
            return self._take_leftover(buflen, flags)
        return bytes(self._plain.recv(buflen, flags))

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        self._checkClosed()
        if nbytes is None:
            if buffer is not None:
                with memoryview(buffer) as view:
                    nbytes = view.nbytes
                if not nbytes:
                    nbytes = 1024
            else:
                nbytes = 1024
        if self._sslobj is not None:
            if flags != 0:
                raise ValueError(
                    f"non-zero flags not allowed in calls to recv_into() on {type(self)}")
            return int(self.read(nbytes, buffer))
        if self._leftover:
            data = self._take_leftover(nbytes, flags)
            memoryview(buffer).cast("B")[:len(data)] = data
            return len(data)
        return int(self._plain.recv_into(buffer, nbytes, flags))

    def _take_leftover(self, size: int, flags: int) -> bytes:
        data = self._leftover[:size]
        if not flags & MSG_PEEK:
            self._leftover = self._leftover[len(data):]
            if not self._leftover:
                self._plain._sock.set_held_above(False)
        return data

    def recvfrom(self, buflen: int = 1024, flags: int = 0) -> tuple[bytes, Any]:
        self._checkClosed()
        if self._sslobj is not None:
            raise ValueError(f"recvfrom not allowed on instances of {type(self)}")
        return self.recv(buflen, flags), None

    def recvfrom_into(self, buffer: Any, nbytes: int | None = None,
                      flags: int = 0) -> tuple[int, Any]:
        self._checkClosed()
        if self._sslobj is not None:
            raise ValueError(f"recvfrom_into not allowed on instances of {type(self)}")
        return self.recv_into(buffer, nbytes, flags), None

    # ------------------------------------------------------- connection, life

    def _real_connect(self, addr: Any, connect_ex: bool) -> int | None:
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected or self._sslobj is not None:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        self._start_tls()
        try:
            rc: int | None = None
            if connect_ex:
                rc = self._plain.connect_ex(addr)
            else:
                self._plain.connect(addr)
            if not rc:
                self._connected = True
                if self.do_handshake_on_connect:
                    self.do_handshake()
            return rc
        except (OSError, ValueError):
            self._sslobj = None
            self._channel = None
            raise

    def connect(self, addr: Any) -> None:
        self._real_connect(addr, False)

    def connect_ex(self, addr: Any) -> int:
        return int(self._real_connect(addr, True) or 0)

    def accept(self) -> tuple[SSLSocket, Any]:
        """Accept, then wrap server side (handshaking now if ``do_handshake_on_connect``)."""
        newsock, addr = self._plain.accept()
        wrapped = type(self)._create(
            newsock, server_side=True, do_handshake_on_connect=self.do_handshake_on_connect,
            suppress_ragged_eofs=self.suppress_ragged_eofs, context=self.context,
        )
        return wrapped, addr

    def shutdown(self, how: int) -> None:
        self._checkClosed()
        self._sslobj = None
        self._channel = None
        self._plain.shutdown(how)

    def _real_close(self) -> None:
        self._sslobj = None
        self._channel = None
        plain = self._plain
        if plain._sock.closed and not plain._released:
            # closed under us through ``self._sock`` (gevent's pywsgi reads out and closes
            # ``socket._sock`` before closing the socket; with gevent's kernel sockets that
            # is a raw socket object, and closing the socket after it is silent): nothing
            # is left to close, and no EBADF to report
            plain._closed = plain._released = True
            return
        plain.close()

    def detach(self) -> int:
        self._closed = True
        self._sslobj = None
        self._channel = None
        return int(self._plain.detach())

    # ------------------------------------------- the socket, delegated to the plain one

    @property
    def family(self) -> Any:
        return self._plain.family

    @property
    def type(self) -> Any:
        return self._plain.type

    @property
    def proto(self) -> int:
        return int(self._plain.proto)

    @property
    def timeout(self) -> float | None:
        return self._plain.gettimeout()

    def fileno(self) -> int:
        return int(self._plain.fileno())

    def bind(self, address: Any) -> None:
        self._plain.bind(address)

    def listen(self, *backlog: int) -> None:
        self._plain.listen(*backlog)

    def getsockname(self) -> Any:
        return self._plain.getsockname()

    def getpeername(self) -> Any:
        return self._plain.getpeername()

    def getsockopt(self, *args: Any) -> Any:
        return self._plain.getsockopt(*args)

    def setsockopt(self, *args: Any) -> None:
        self._plain.setsockopt(*args)

    def settimeout(self, value: float | None) -> None:
        self._plain.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._plain.gettimeout()

    def setblocking(self, flag: bool) -> None:
        self._plain.setblocking(flag)

    def getblocking(self) -> bool:
        return bool(self._plain.getblocking())

    def get_inheritable(self) -> bool:
        return bool(self._plain.get_inheritable())

    def set_inheritable(self, inheritable: bool) -> None:
        self._plain.set_inheritable(inheritable)
