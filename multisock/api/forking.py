"""fork(): a child keeps using the userspace sockets it inherited, served by the parent.

The stack lives in the parent's memory, so a forked child cannot run it. Instead, as the
kernel shares an fd's socket between the processes holding it, every userspace socket open
at fork time gets one more reference held by the child, and the child's copies become
:class:`RemoteCore` objects that send each call (recv, send, sendto, shutdown, close,
options...) over a kernel socketpair to a thread in the parent, which performs it on the
real socket and sends back the result or the exception. When the child closes a socket the
parent drops the child's reference; when the child exits (its end of the pair closes) the
parent drops every reference it still held. So ``socketserver.ForkingMixIn`` works: the
parent closes its copy of the connection, the child serves it and closes it, and only then
does TCP close.

A child's ``accept()`` on an inherited listener is performed by the parent too (the
preforking servers: socketserver's ForkingMixIn-style pools of children accepting on one
listener): the parent keeps the new connection for the child, as one more socket it serves,
and passes the child the connection's readiness fds over the channel (SCM_RIGHTS).

Readiness in the child: at fork every inherited socket gets its readability eventfd and a
second eventfd mirroring writability (``Core._wfd``), which the parent keeps up to date
(the stack's change callbacks say when room appears; a send that takes room, the parent's
or the child's, updates it at once: ``StreamCore._sync_wfd``, ``_refresh``);
``multisock.select`` sleeps on them in the kernel, so a child's ``select`` wakes on either
direction.

Limits: a child cannot create new userspace sockets (or dup them in a way needing the
network) — those need the network in its own process; its calls fail with a clear OSError.
A grandchild (a fork of a child) gets nothing: the sockets it inherited answer every call
with EBADF ("only a direct child of the process running the network can use them"); their
readiness fds still reflect the socket, and the child's own copies are unaffected.
"""

from __future__ import annotations

import _socket
import array
import errno
import os
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

from multisock.api.core import Core, cores_by_fd
from multisock.api.readiness import ReadinessFd

_LEN = struct.Struct("!I")

_state = threading.local()
_pending: dict[str, Any] = {}
_child_channel: Any = None
_child_lock = threading.Lock()

# The class multisock wraps kernel fds in, read at fork time: ``multisock.socket._KernelSocket``,
# which ``multisock.green`` swaps for gevent's. The facade, a layer above, registers how to
# read it when it is imported (which also installs the fork hooks below).
def _stdlib_kernel_socket_class() -> Any:
    return _socket.socket


kernel_socket_class: Callable[[], Any] = _stdlib_kernel_socket_class


def _send_msg(sock: Any, obj: Any) -> None:
    import pickle  # here: only the fork channel uses it (~0.5 MiB); _before() loads it

    data = pickle.dumps(obj)
    sock.sendall(_LEN.pack(len(data)) + data)


def _recv_exact(sock: Any, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


def _recv_msg(sock: Any) -> Any:
    import pickle

    (size,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    return pickle.loads(_recv_exact(sock, size))


# ------------------------------------------------------------------ fork hooks

def _live_cores() -> list[Any]:
    """Every open userspace socket of this process (a heap walk: only fork pays for it,
    not every socket)."""
    import gc

    return [o for o in gc.get_objects() if isinstance(o, Core) and not o.closed]


def _before() -> None:
    if _child_channel is not None or "multisock.net.network" not in sys.modules:
        _pending.pop("grandchild", None)
        if _child_channel is not None:
            _pending["grandchild"] = True
        return
    cores = _live_cores()
    if not cores:
        return
    import pickle  # noqa: F401 - loaded before the fork: neither side imports after it

    parent_end, child_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    drivers = {id(c.driver): c.driver for c in cores}
    for driver in drivers.values():
        driver.lock.acquire()
    try:
        for core in cores:
            core.refs += 1
            _readiness_fds(core)
    finally:
        for driver in drivers.values():
            driver.lock.release()
    _pending.update(parent=parent_end, child=child_end, cores=cores)


def _readiness_fds(core: Any) -> tuple[int, int]:
    """The core's read and write readiness eventfds, made if missing, and brought up to date
    either way (driver lock held): a child starts from the socket's readiness at fork time,
    whatever an earlier fork left in them."""
    if core.fileno() < 0:
        return -1, -1
    if core._wfd is None:
        core._wfd = ReadinessFd()
    core.sync_fd()
    core._wfd.update(core.writable())
    return core._fd.fd, core._wfd.fd


def _refresh(core: Any) -> None:
    """After a call made for the child: what it consumed may have changed readiness."""
    with core.driver.lock:
        if core.closed:
            return
        core.sync_fd()
        if core._wfd is not None:
            core._wfd.update(core.writable())


def _channel(sock: Any) -> Any:
    """The channel as the class multisock wraps kernel fds in: the C socket, or under gevent
    (``multisock.green``) gevent's cooperative one, so that waiting for the other process
    parks a greenlet instead of the hub."""
    cls = kernel_socket_class()
    if cls is _socket.socket:
        return sock
    return cls(sock.family, sock.type, sock.proto, sock.detach())


def _after_in_parent() -> None:
    if not _pending:
        return
    parent_end, child_end, cores = _pending["parent"], _pending["child"], _pending["cores"]
    _pending.clear()
    child_end.close()
    parent_end = _channel(parent_end)
    held = {id(c): c for c in cores}
    threading.Thread(target=_serve, args=(parent_end, held), name="multisock-fork-server",
                     daemon=True).start()


def _after_in_child() -> None:
    global _child_channel, _child_lock
    if _pending.pop("grandchild", None):
        # a fork of a child: the channel is the child's, not ours to share
        _child_channel = None
        return
    if not _pending:
        return
    parent_end, child_end, cores = _pending["parent"], _pending["child"], _pending["cores"]
    _pending.clear()
    parent_end.close()
    _child_channel = _channel(child_end)
    _child_lock = threading.Lock()  # a fresh one: gevent's if patched; none held across fork
    _redirect(cores, {id(core): _as_remote(core) for core in cores})


def _as_remote(core: Core) -> RemoteCore:
    """The child's stand-in for an inherited core: a RemoteCore carrying the core's state
    (its readiness fds, timeout, family...), named by the core's id in the parent."""
    remote = RemoteCore.__new__(RemoteCore)
    names = getattr(type(core), "__mypyc_attrs__", None)
    if names is None:  # the pure build: a plain object
        state = dict(core.__dict__)
    else:  # the compiled build: a native object has no __dict__, its class lists its fields
        state = {name: getattr(core, name) for name in names if hasattr(core, name)}
    remote.__dict__.update(state)
    remote._remote_id = id(core)
    remote.refs -= 1  # the parent's extra reference is the one this process holds
    return remote


def _redirect(cores: list[Any], remotes: dict[int, RemoteCore]) -> None:
    """Every reference the child's Python objects hold to an inherited core now names its
    RemoteCore: the socket objects' ``_sock`` slot, ``cores_by_fd``, and whatever dict (value
    or key), list, set, instance attribute, slot or closure cell held one; a tuple holding
    one (a poll object's ``(core, mask)``) is replaced, wherever it is held, by a tuple of the
    same items with the RemoteCore. (The core cannot become a RemoteCore in place: in the
    compiled build it is a native object, whose class is fixed.) What the stack's compiled
    objects hold stays: the stack does not run in the child. A heap walk per level of tuple
    nesting, as at fork in the parent: only a fork pays for it."""
    import gc
    import types

    new: dict[int, Any] = dict(remotes)  # id of what the child must stop naming -> stand-in
    done: list[Any] = []  # those objects, alive until the end (so that their ids stay theirs)
    olds: list[Any] = list(cores)
    while olds:
        tuples: list[tuple[Any, ...]] = []
        for holder in gc.get_referrers(*olds):
            if holder is olds or holder is cores or holder is done or holder is tuples:
                continue
            if isinstance(holder, types.FrameType):
                continue
            if type(holder) is tuple:
                if id(holder) not in new:
                    tuples.append(holder)
            else:
                try:
                    _replace_in(holder, new)
                except Exception:  # noqa: BLE001 - an odd object (a proxy...): the others still
                    pass
        for old in tuples:
            new[id(old)] = tuple(new.get(id(item), item) for item in old)
        done += olds
        olds = tuples


def _replace_in(holder: Any, new: dict[int, Any]) -> None:
    """In one container or object: each reference to an object of ``new`` now names its
    replacement."""
    import types

    if isinstance(holder, dict):
        for key, value in list(holder.items()):
            if id(value) in new:
                holder[key] = new[id(value)]
        for key in [key for key in holder if id(key) in new]:
            holder[new[id(key)]] = holder.pop(key)
    elif isinstance(holder, list):
        for index, value in enumerate(holder):
            if id(value) in new:
                holder[index] = new[id(value)]
    elif isinstance(holder, set):
        for value in [value for value in holder if id(value) in new]:
            holder.discard(value)
            holder.add(new[id(value)])
    elif isinstance(holder, types.CellType):
        try:
            value = holder.cell_contents
        except ValueError:  # an empty cell
            return
        if id(value) in new:
            holder.cell_contents = new[id(value)]
    else:
        attrs = getattr(holder, "__dict__", None)
        if isinstance(attrs, dict):
            _replace_in(attrs, new)
        _replace_in_slots(holder, new)


def _replace_in_slots(holder: Any, new: dict[int, Any]) -> None:
    """The slots of ``holder`` (the socket object's ``_sock``) that name an object of ``new``."""
    for cls in type(holder).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            member: Any = cls.__dict__.get(name)
            if name in ("__weakref__", "__dict__") or not hasattr(member, "__set__"):
                continue
            try:
                value = member.__get__(holder, cls)
            except AttributeError:  # an unset slot
                continue
            if id(value) in new:
                member.__set__(holder, new[id(value)])


os.register_at_fork(before=_before, after_in_parent=_after_in_parent,
                    after_in_child=_after_in_child)


# ------------------------------------------------------------------ parent side

def _serve(channel: Any, held: dict[int, Any]) -> None:
    """Run the child's calls on the real sockets until it goes away, then drop its refs."""
    import pickle

    try:
        while True:
            try:
                core_id, method, args = _recv_msg(channel)
            except (EOFError, OSError):
                return
            core = held.get(core_id)
            try:
                if core is None:
                    raise OSError(errno.EBADF, os.strerror(errno.EBADF))
                fds: list[int] = []
                if method == "close":
                    del held[core_id]
                    result: Any = core.close()
                elif method == "accept":
                    conn, address = _accept_for_child(core, *args)
                    held[id(conn)] = conn
                    with conn.driver.lock:
                        fds = list(_readiness_fds(conn))
                    result = (id(conn), conn.family, conn.type, conn.proto, address)
                elif method == "recv_into":
                    result = core.recv(*args)
                else:
                    result = getattr(core, method)(*args)
                if method != "close":
                    _refresh(core)
                reply: Any = ("ok", result)
            except BaseException as exc:  # noqa: BLE001 - the child re-raises it
                reply = ("err", exc)
            try:
                _send_msg(channel, reply)
                if reply[0] == "ok" and fds:
                    channel.sendmsg([b"F"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                                              array.array("i", fds))])
            except (pickle.PicklingError, TypeError):
                _send_msg(channel, ("err", OSError(errno.EOPNOTSUPP,
                                                   f"{method}() cannot be done from a child")))
            except OSError:
                return
    finally:
        channel.close()
        for core in held.values():
            try:
                core.close()
            except OSError:
                pass


def _accept_for_child(listener: Any, timeout: Any) -> tuple[Any, Any]:
    """Accept with the child's timeout (its object's, not the parent's)."""
    saved = listener.timeout
    listener.timeout = timeout
    try:
        return listener.accept()
    finally:
        listener.timeout = saved


# ------------------------------------------------------------------- child side

_GONE = ("multisock: this socket's process is gone (only a direct child of the process "
         "running the network can use the sockets it inherited)")


class _InheritedFd:
    """A readiness eventfd the parent passed over the channel: it keeps it up to date."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _default_timeout() -> float | None:
    from multisock.api.core import get_default_timeout

    return get_default_timeout()


def _call(core_id: int, method: str, *args: Any) -> Any:
    channel = _child_channel
    if channel is None:
        raise OSError(errno.EBADF, _GONE)
    with _child_lock:
        _send_msg(channel, (core_id, method, args))
        status, value = _recv_msg(channel)
    if status == "err":
        try:
            raise value
        finally:
            del value  # its traceback holds this frame: no cycle through it
    return value


def _forwarded(name: str) -> Any:
    def method(self: RemoteCore, *args: Any) -> Any:
        return _call(self._remote_id, name, *args)

    method.__name__ = name
    return method


class RemoteCore:
    """A userspace socket in a forked child: every call runs in the parent (see module doc)."""

    _remote_id: int
    closed: bool
    refs: int
    timeout: float | None
    _fd: Any
    _wfd: Any

    bind = _forwarded("bind")
    connect = _forwarded("connect")
    connect_ex = _forwarded("connect_ex")
    listen = _forwarded("listen")
    recv = _forwarded("recv")
    recvfrom = _forwarded("recvfrom")
    recvfrom_into = _forwarded("recvfrom_into")
    recvmsg = _forwarded("recvmsg")
    send = _forwarded("send")
    sendall = _forwarded("sendall")
    sendto = _forwarded("sendto")
    sendmsg = _forwarded("sendmsg")
    shutdown = _forwarded("shutdown")
    getsockname = _forwarded("getsockname")
    getpeername = _forwarded("getpeername")
    setsockopt = _forwarded("setsockopt")
    getsockopt = _forwarded("getsockopt")
    readable = _forwarded("readable")
    writable = _forwarded("writable")
    getblocking = _forwarded("getblocking")
    gettimeout = _forwarded("gettimeout")

    def settimeout(self, value: Any) -> None:
        _call(self._remote_id, "settimeout", value)
        self.timeout = value

    def setblocking(self, flag: bool) -> None:
        _call(self._remote_id, "setblocking", flag)
        self.timeout = None if flag else 0.0

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = _call(self._remote_id, "recv_into", nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0) -> Any:
        views = [memoryview(b).cast("B") for b in buffers]
        data, anc, msg_flags, addr = _call(self._remote_id, "recvmsg",
                                           sum(len(v) for v in views), ancbufsize, flags)
        offset = 0
        for view in views:
            chunk = data[offset: offset + len(view)]
            view[: len(chunk)] = chunk
            offset += len(chunk)
        return offset, anc, msg_flags, addr

    def accept(self) -> Any:
        """The parent accepts; the connection becomes one more socket it serves for us."""
        channel = _child_channel
        if channel is None:
            raise OSError(errno.EBADF, _GONE)
        with _child_lock:
            _send_msg(channel, (self._remote_id, "accept", (self.timeout,)))
            status, value = _recv_msg(channel)
            fds: list[int] = []
            if status == "ok":
                _msg, anc, _flags, _addr = channel.recvmsg(1, _socket.CMSG_SPACE(8))
                for level, kind, data in anc:
                    if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                        fds += array.array("i", data[: len(data) - len(data) % 4]).tolist()
        if status == "err":
            try:
                raise value
            finally:
                del value
        remote_id, family, kind, proto, address = value
        conn = RemoteCore.__new__(RemoteCore)
        conn.__dict__.update(_remote_id=remote_id, family=family, type=kind, proto=proto,
                             closed=False, refs=1, timeout=_default_timeout(), _fd=None,
                             _wfd=None)
        if len(fds) == 2:
            conn._fd, conn._wfd = _InheritedFd(fds[0]), _InheritedFd(fds[1])
            cores_by_fd[fds[0]] = conn  # type: ignore[assignment]
        return conn, address

    def _accept(self) -> tuple[int, Any]:
        conn, address = self.accept()
        return conn.fileno(), address

    def fileno(self) -> int:
        # the readiness eventfd, if the parent had made it before fork, is inherited and
        # still reflects the socket's readability
        fd = getattr(self, "_fd", None)
        return int(fd.fd) if fd is not None and not self.closed else -1

    def close(self) -> None:
        if self.closed:
            return
        self.refs -= 1
        if self.refs > 0:
            return
        self.closed = True
        for fd in (self.__dict__.get("_fd"), self.__dict__.get("_wfd")):
            if isinstance(fd, _InheritedFd):  # (received with an accepted connection)
                cores_by_fd.pop(fd.fd, None)
                fd.close()
        try:
            _call(self._remote_id, "close")
        except (OSError, EOFError):
            pass

    @property
    def watchers(self) -> set[Any]:
        return set()
