"""One TLS connection's ciphertext plumbing: OpenSSL over memory BIOs, a userspace TCP below.

OpenSSL cannot read or write a multisock socket (there is no kernel fd behind
it), so TLS runs sans-IO: ``SSLContext._wrap_bio`` makes the same C object that
``ssl.SSLSocket`` drives, but one that reads ciphertext from an incoming
``ssl.MemoryBIO`` and writes to an outgoing one (it is what ``ssl.SSLObject``
wraps). This module moves the bytes between those BIOs and the TCP socket, and
reproduces what ``_ssl.c`` does around a kernel socket:

* one deadline per operation: the socket timeout bounds the whole read, write
  or handshake, and expiry raises ``TimeoutError("The read operation timed out")``
  (handshake, write) with CPython's wording;
* non-blocking sockets raise ``SSLWantReadError`` / ``SSLWantWriteError``; a write
  whose ciphertext could not all be sent reports ``SSLWantWriteError`` and, like
  OpenSSL, expects to be retried with the same data, which then returns its length;
* bytes held here (decrypted but unread, or received but not yet decrypted)
  make the core readable, so ``select``, ``selectors`` and the eventfd see them.

Threads: one thread may read while another writes (as programs do with kernel
TLS sockets). The SSL object, both BIOs and the outgoing queue are guarded by
one lock; ciphertext leaves and enters under two more locks so that it keeps its
order. Only writers ever wait while holding the send lock; readers just try it.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from multisock.api.core import MSG_DONTWAIT

T = TypeVar("T")

WRITE_CHUNK = 256 * 1024  # plaintext encrypted per step: bounds the ciphertext held here
READ_CHUNK = 64 * 1024  # ciphertext taken from TCP per call
SEND_CHUNK = 256 * 1024  # ciphertext handed to TCP per call


def _ssl_error(cls: type[ssl.SSLError], code: int, message: str) -> Any:
    error = cls(code, message)
    error.reason = None  # type: ignore[assignment]  # as _ssl.c leaves it: no OpenSSL error
    error.library = None  # type: ignore[assignment]
    return error


def want_write() -> ssl.SSLWantWriteError:
    return _ssl_error(ssl.SSLWantWriteError, ssl.SSL_ERROR_WANT_WRITE,
                      "The operation did not complete (write)")


def eof_error() -> ssl.SSLEOFError:
    return _ssl_error(ssl.SSLEOFError, ssl.SSL_ERROR_EOF, "EOF occurred in violation of protocol")


def timed_out(what: str) -> TimeoutError:
    return TimeoutError(f"The {what} operation timed out")


class Deadline:
    """The time one SSL operation may take: ``None`` forever, ``0.0`` non-blocking."""

    __slots__ = ("timeout", "end")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.end = None if timeout is None else time.monotonic() + timeout

    @property
    def nonblocking(self) -> bool:
        return self.timeout == 0.0

    def remaining(self) -> float | None:
        if self.end is None:
            return None
        return max(0.0, self.end - time.monotonic())


class TlsChannel:
    """The SSL object of one connection, its BIOs, and the userspace socket under them."""

    def __init__(self, plain: Any, sslobj: Any, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO) -> None:
        self.plain = plain  # the multisock.socket.socket carrying the ciphertext
        self.core = plain._sock
        self.sslobj = sslobj
        self.incoming = incoming
        self.outgoing = outgoing
        self._out = bytearray()  # ciphertext taken from the outgoing BIO, not yet sent
        self._state = threading.Lock()  # the SSL object, both BIOs and _out
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._rbuf = bytearray(READ_CHUNK)
        self._eof = False
        self._committed = 0  # plaintext encrypted by a write that then reported WantWrite

    # ------------------------------------------------------------ operations

    def run(self, op: Callable[[], T], what: str | None, deadline: Deadline,
            *, flush: bool, io_error_is_eof: bool = False) -> T:
        """Call ``op`` (an SSL object method) until it stops wanting input; then send what
        it produced: all of it when ``flush`` (handshake, write, shutdown), else what the
        transport takes now. ``what`` names the operation in timeout messages (None: the
        direction, as for CPython's shutdown).

        ``io_error_is_eof``: a transport error (reset, broken pipe) becomes ``SSLEOFError``,
        as CPython reports it for reads and writes (``SSL_read_ex``/``SSL_write_ex`` return 0,
        which ``_ssl.c`` takes for EOF); the handshake and shutdown raise the OSError itself.
        """
        wanted: ssl.SSLWantReadError | None = None
        try:
            while True:
                with self._state:
                    try:
                        return_value = op()
                    except ssl.SSLWantReadError as exc:
                        wanted = exc
                    else:
                        wanted = None
                    finally:
                        self._collect()
                if wanted is None:
                    break
                self._await_input(wanted, what or "read", deadline)
            if flush:
                self.flush(what or "write", deadline)
            else:
                self._try_send()
            return return_value
        except ssl.SSLError as exc:
            if not isinstance(exc, (ssl.SSLWantReadError, ssl.SSLWantWriteError)):
                self._try_send()  # the alert OpenSSL queued for the peer
            raise
        except (TimeoutError, BlockingIOError):
            raise
        except OSError as exc:
            if io_error_is_eof:
                raise eof_error() from exc
            raise
        finally:
            # the WantRead's traceback holds this frame: left here when another error ends
            # the operation, it would be a cycle pinning every caller's frame (and their
            # sockets) until the garbage collector ran
            wanted = None
            self.publish()

    def write(self, data: Any, deadline: Deadline) -> int:
        """Encrypt and send ``data``: all of it when blocking, one chunk when not."""
        try:
            return self._write(data, deadline)
        except ssl.SSLError:
            raise
        except (TimeoutError, BlockingIOError):
            raise
        except OSError as exc:
            raise eof_error() from exc

    def _write(self, data: Any, deadline: Deadline) -> int:
        view = memoryview(data).cast("B")
        sslobj = self.sslobj
        if self._committed:
            # the retry OpenSSL asks for after WantWrite: finish sending, report the length
            self.flush("write", deadline)
            done, self._committed = self._committed, 0
            return done
        self.flush("write", deadline)  # older ciphertext first (WantWrite if it cannot go)
        if not len(view):
            return self.run(lambda: sslobj.write(view), "write", deadline, flush=True)
        total = 0
        while total < len(view):
            chunk = view[total:total + WRITE_CHUNK]

            def encrypt(chunk: memoryview = chunk) -> int:
                return int(sslobj.write(chunk))

            n = self.run(encrypt, "write", deadline, flush=False)
            try:
                self.flush("write", deadline)
            except ssl.SSLWantWriteError:
                self._committed = n
                raise
            total += n
            if deadline.nonblocking:
                break
        return total

    # ---------------------------------------------------------- ciphertext in

    def _await_input(self, wanted: ssl.SSLWantReadError, what: str, deadline: Deadline) -> None:
        """Get more ciphertext into the incoming BIO, or raise what the kernel path would."""
        while True:
            self._try_send()
            if self._fill():
                return
            if deadline.nonblocking:
                if self._out:
                    raise want_write()  # OpenSSL writes before it reads
                try:
                    raise wanted
                finally:
                    del wanted  # its traceback now holds this frame: no cycle through it
            also_write = bool(self._out) and not self._send_lock.locked()
            if not self.core.wait_io(True, also_write, deadline.remaining()):
                raise timed_out(what)

    def _fill(self) -> bool:
        """Move what TCP has now into the incoming BIO; True if bytes (or EOF) arrived."""
        if self._eof:
            raise eof_error()
        with self._recv_lock:
            try:
                n = self.plain.recv_into(self._rbuf, 0, MSG_DONTWAIT)
            except BlockingIOError:
                return False
            with self._state:
                if n == 0:
                    self._eof = True
                    self.incoming.write_eof()
                else:
                    self.incoming.write(memoryview(self._rbuf)[:n])
            return True

    # --------------------------------------------------------- ciphertext out

    def _collect(self) -> None:
        """(state lock held) Take what OpenSSL wrote into the outgoing BIO, in order."""
        if self.outgoing.pending:
            self._out += self.outgoing.read()

    def _send_nowait(self) -> bool:
        """(send lock held) Send queued ciphertext until TCP is full; True when none is left."""
        while True:
            with self._state:
                chunk = bytes(self._out[:SEND_CHUNK])
            if not chunk:
                return True
            try:
                n = self.plain.send(chunk, MSG_DONTWAIT)
            except BlockingIOError:
                return False
            with self._state:
                del self._out[:n]

    def _try_send(self) -> None:
        """Send what TCP takes now, if no writer is at it; errors wait for the next
        operation that must send (or for the receive side, which reports them too)."""
        if self._out and self._send_lock.acquire(blocking=False):
            try:
                self._send_nowait()
            except OSError:
                pass
            finally:
                self._send_lock.release()

    def flush(self, what: str, deadline: Deadline) -> None:
        """Send every queued ciphertext byte (WantWrite when non-blocking, or TimeoutError)."""
        if not self._out:
            return
        if deadline.nonblocking:
            if not self._send_lock.acquire(blocking=False):
                raise want_write()
        else:
            remaining = deadline.remaining()
            if not self._send_lock.acquire(timeout=-1 if remaining is None else remaining):
                raise timed_out(what)
        try:
            while not self._send_nowait():
                if deadline.nonblocking:
                    raise want_write()
                if not self.core.wait_io(False, True, deadline.remaining()):
                    raise timed_out(what)
        finally:
            self._send_lock.release()

    @property
    def unsent(self) -> int:
        return len(self._out)

    # -------------------------------------------------------------- readiness

    def buffered(self) -> bool:
        """Bytes for the reader held here: decrypted ones, or ciphertext not yet decrypted."""
        with self._state:
            return self.sslobj.pending() > 0 or self.incoming.pending > 0

    def publish(self) -> None:
        """Tell the core whether this layer holds bytes for the reader."""
        self.core.set_held_above(self.buffered())

    def take_leftover(self) -> bytes:
        """After the TLS shutdown: bytes the peer sent in clear after its close_notify."""
        with self._state:
            return self.incoming.read()
