"""UDP and ICMP-echo ("ping") sockets over the userspace stack."""

from __future__ import annotations

import _socket
import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from multisock.api import ancillary as A
from multisock.api import multicast
from multisock.api import options as O
from multisock.api.bridge import _POLLIN, _ready
from multisock.api.core import MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC, WAIT_READ, Core
from multisock.api.dgram_bridge import DatagramBridge, default_fd_mode
from multisock.api.errors import bad_fd, oserror
from multisock.api.stream import FD_BRIDGED, FD_READINESS, SO_FD_MODE, SOL_MULTISOCK
from multisock.stack.addresses import AF_INET, AF_INET6, is_wildcard
from multisock.stack.datagram import (
    RECV_HOPLIMIT,
    RECV_PKTINFO,
    RECV_TCLASS,
    DatagramEndpoint,
    Meta,
)

if TYPE_CHECKING:
    from multisock.net.host import Host


_RECV_OPTIONS = {
    (_socket.IPPROTO_IP, getattr(_socket, "IP_RECVTTL", 12)): RECV_HOPLIMIT,  # Linux's value
    (_socket.IPPROTO_IP, _socket.IP_RECVTOS): RECV_TCLASS,
    (_socket.IPPROTO_IPV6, _socket.IPV6_RECVHOPLIMIT): RECV_HOPLIMIT,
    (_socket.IPPROTO_IPV6, _socket.IPV6_RECVTCLASS): RECV_TCLASS,
    (_socket.IPPROTO_IP, A.IP_PKTINFO): RECV_PKTINFO,
    (_socket.IPPROTO_IPV6, _socket.IPV6_RECVPKTINFO): RECV_PKTINFO,
}
_NO_ADDRESS: Any = object()  # sendto(data, address) vs sendto(data, flags, None)


def _readable_or_closed(core: DatagramCore) -> Callable[[], bool]:
    """recv's wait predicate (a module function, not a closure in the method: see
    ``api.stream``'s wait predicates)."""
    return lambda: core.ep.readable or core.closed


def _bridge_readable(core: DatagramCore, app: Any) -> Callable[[], bool]:
    """A bridged recv's wait predicate: a datagram in the pair (the relay wakes the waiter
    after moving one there), an error, a shut reading side, or closed."""
    ep = core.ep
    return lambda: core.closed or ep.pending_error != 0 or ep.shut_rd or _ready(app, _POLLIN)


class DatagramCore(Core):
    """SOCK_DGRAM: UDP, or ping sockets when proto is IPPROTO_ICMP/ICMPV6."""

    def __init__(self, host: Host, family: int, type: int, proto: int) -> None:
        super().__init__(host, family, type, proto)
        self.is_raw = type & 0xF == _socket.SOCK_RAW
        self.is_ping = proto in (_socket.IPPROTO_ICMP, _socket.IPPROTO_ICMPV6) and not self.is_raw
        self.ep = DatagramEndpoint(family)
        self.ep.on_change = self.changed
        if self.is_raw:
            self._raw().open(self.ep)
        if family == AF_INET6:
            self.ep.v6only = False
        # bridged fd mode (api/dgram_bridge.py): UDP only; the pair is made by fileno() (into
        # Core's ``bridge``)
        self.fd_mode = default_fd_mode()
        # recvfrom's last source, (address, port, as formatted for the program)
        self._last_source: tuple[bytes, int, tuple[Any, ...]] | None = None

    @property
    def _stack(self) -> Any:
        if self.is_raw:
            return self._raw()
        return self.host.ip.ping if self.is_ping else self.host.ip.udp

    def _raw(self) -> Any:
        ip = self.host.ip
        if getattr(ip, "raw_icmp", None) is None:
            from multisock.stack.raw import RawIcmp

            ip.raw_icmp = RawIcmp(ip)
        return ip.raw_icmp

    def readable(self) -> bool:
        bridge = self.bridge
        if bridge is not None:  # the datagrams are in the kernel pair
            ep = self.ep
            return self.closed or ep.pending_error != 0 or ep.shut_rd or _ready(bridge.app, _POLLIN)
        return self.ep.readable or self.closed

    # ------------------------------------------------------------ bridged fd mode

    def fileno(self) -> int:
        bridge = self.bridge
        if bridge is not None:
            return -1 if self.closed else bridge.fileno()
        if self.fd_mode == FD_BRIDGED and not self.closed and not (self.is_ping or self.is_raw):
            with self.driver.operation():
                if self.bridge is None:
                    self._start_bridge()
                assert self.bridge is not None
                return self.bridge.fileno()
        return super().fileno()

    def _start_bridge(self) -> None:
        """Give the socket its datagram pair (lock held); at the readiness fd's number if the
        program has that number already."""
        bridge = self.bridge = self._new_bridge(DatagramBridge)
        bridge.pump()

    def changed(self) -> None:
        Core.changed(self)  # (not super(): a compiled non-native class pays for the proxy)
        bridge = self.bridge
        if bridge is not None:
            self.driver.after_drain(bridge.pump)

    def _pass_on_fd_writes(self) -> None:
        """What C code wrote on a bridged fd goes before what Python does next, even when
        that is an error: the driver's own pass may not have run yet."""
        bridge = self.bridge
        if bridge is not None:
            with self.driver.operation():
                bridge.from_app()

    def relay_send(self, data: bytes) -> None:
        """Send a datagram the program wrote on its fd to the connected peer (lock held)."""
        remote = self.ep.remote
        assert remote is not None
        addr, port = remote
        self._stack.sendto(self.ep, memoryview(data), addr, port, None, None, None)

    def writable(self) -> bool:
        return not self.closed

    # --------------------------------------------------------------- binding

    def bind(self, address: Any) -> None:
        self.check_open()
        addr, port = self.parse(address, "bind")
        with self.driver.operation():
            if self.ep.local is not None and not self.is_raw:
                raise oserror(errno.EINVAL)
            if self.is_raw:
                self.host.ip.check_bind_address(self.family, addr, False)
                self.ep.local = (addr, 0)
                return
            self._stack.bind(self.ep, addr, port)

    def connect(self, address: Any) -> None:
        self.check_open()
        addr, port = self.parse(address, "connect")
        with self.driver.operation():
            self.host.touch()
            if self.is_ping:
                self._stack.autobind(self.ep)
                self.ep.remote = (addr, port)
            else:
                self._stack.connect(self.ep, addr, port)

    def connect_ex(self, address: Any) -> int:
        try:
            self.connect(address)
        except (_socket.gaierror, _socket.herror):
            raise  # CPython resolves before connect(2): name errors are raised, not returned
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno
        return 0

    def listen(self, backlog: int = 0) -> None:
        raise oserror(errno.EOPNOTSUPP)

    def accept(self) -> Any:
        raise oserror(errno.EOPNOTSUPP)

    def getsockname(self) -> tuple[Any, ...]:
        self.check_open()
        local = self.ep.local
        if local is None:
            return self.format(bytes(4) if self.family == AF_INET else bytes(16), 0)
        return self.format(*local)

    def getpeername(self) -> tuple[Any, ...]:
        self.check_open()
        if self.ep.remote is None:
            raise oserror(errno.ENOTCONN)
        return self.format(*self.ep.remote)

    # --------------------------------------------------------------- sending

    def send(self, data: Any, flags: int = 0) -> int:
        if self.closed:
            raise bad_fd()
        remote = self.ep.remote
        if remote is None:
            self._pass_on_fd_writes()  # (they fail too: counted, as the driver would)
            raise oserror(errno.EDESTADDRREQ)
        return self._send(data, remote)

    def sendto(self, data: Any, flags_or_address: Any, address: Any = _NO_ADDRESS) -> int:
        self.check_open()
        if address is _NO_ADDRESS:
            address, flags = flags_or_address, 0
        else:
            flags = flags_or_address
        if not isinstance(flags, int):
            raise TypeError(f"'{type(flags).__name__}' object cannot be interpreted as an integer")
        view = data if type(data) is bytes else memoryview(data)
        target = self.parse(address, "sendto")
        return self._send(view, target)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.send(data, flags)

    def sendmsg(
        self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None
    ) -> int:
        self.check_open()
        data, cmsgs, flags = A.sendmsg_args(buffers, ancdata, flags)
        ttl, tos, pktinfo = A.datagram_overrides(self.family, cmsgs)
        if address is None:
            if self.ep.remote is None:
                raise oserror(errno.EDESTADDRREQ)
            return self._send(data, self.ep.remote, ttl, tos, pktinfo)
        return self._send(memoryview(data), self.parse(address, "sendmsg"), ttl, tos, pktinfo)

    def _pktinfo_source(self, pktinfo: A.PktInfo) -> bytes | None:
        """The source address IP_PKTINFO/IPV6_PKTINFO asks for (lock held): its address,
        else the named interface's; Linux's errors for an unknown interface (ENODEV) or
        an address not ours (IPv4 finds no route from it: ENETUNREACH; IPv6: EINVAL)."""
        addr, ifindex = pktinfo
        ip = self.host.ip
        iface = None
        if ifindex:
            iface = next((i for i in ip.interfaces if i.index == ifindex), None)
            if iface is None:
                raise oserror(errno.ENODEV)
        if not is_wildcard(addr):
            if not ip.is_local_address(addr):
                raise oserror(errno.ENETUNREACH if len(addr) == 4 else errno.EINVAL)
            return bytes(addr)
        if iface is not None and not iface.loopback:
            own = iface.addresses_of(self.family)
            return own[0] if own else None
        return None

    def _send(self, data: Any, target: tuple[bytes, int], ttl: int | None = None,
              tos: int | None = None, pktinfo: A.PktInfo | None = None) -> int:
        view: bytes | memoryview
        if type(data) is bytes:
            view = data  # (immutable: the stack may read it as it is, no view to make)
        else:
            view = data if isinstance(data, memoryview) else memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
        ep = self.ep
        host = self.host
        with self.driver.operation():
            host.touch()
            if self.bridge is not None:
                self.bridge.from_app()  # what C code wrote on the fd before goes first
            if ep.shut_wr:
                raise oserror(errno.EPIPE)
            if ep.pending_error:
                raise oserror(ep.take_error())
            addr, port = target
            if self.is_ping or self.is_raw:
                sent = int(self._stack.sendto(ep, view, addr))
            else:
                if is_wildcard(addr):
                    # Linux sends to the wildcard as to the loopback address
                    addr = b"\x7f\x00\x00\x01" if len(addr) == 4 else bytes(15) + b"\x01"
                source = self._pktinfo_source(pktinfo) if pktinfo is not None else None
                sent = int(host.ip.udp.sendto(ep, view, addr, port, ttl, tos, source))
            return sent

    # ------------------------------------------------------------- receiving

    def _recv(self, flags: int) -> tuple[bytes, tuple[bytes, int], Meta | None]:
        if self.closed:
            raise bad_fd()
        if self.bridge is not None:
            return self._recv_bridged(flags)
        ep = self.ep
        driver = self.driver
        with driver.operation():
            driver.drain()  # (wait()'s first step: what is queued may make us ready)
            if not (ep.queue or ep.pending_error or ep.shut_rd or ep.closed or self.closed):
                # nothing queued: wait (ep.readable, or closed); a datagram already there
                # is taken without making the predicate or entering wait()
                self.wait(_readable_or_closed(self), flags, self._recv_timeout(), WAIT_READ)
            if self.closed:
                raise oserror(errno.EBADF)
            if ep.pending_error:
                raise oserror(ep.take_error())
            item = ep.pop(bool(flags & MSG_PEEK))
            self.sync_fd()
            if item is None:
                return b"", (b"", 0), None
            return item

    def _recv_bridged(self, flags: int) -> tuple[bytes, tuple[bytes, int], Meta | None]:
        """Read the next datagram from the pair (C code reads the same queue), with its
        source from the relay's side queue (api/dgram_bridge.py)."""
        bridge = self.bridge
        assert bridge is not None
        app = bridge.app
        peek = bool(flags & MSG_PEEK)
        limit = self._recv_timeout()
        if limit == "default":
            limit = self.timeout
        deadline = None if not limit else self.driver.now() + limit
        with self.driver.operation():
            while True:
                if deadline is not None:  # (a retry after C code took the datagram)
                    limit = max(deadline - self.driver.now(), 1e-9)
                self.wait(_bridge_readable(self, app), flags, limit, WAIT_READ)
                if self.closed:
                    raise oserror(errno.EBADF)
                err = self.ep.take_error()
                if err:
                    raise oserror(err)
                try:
                    data = app.recv(65536, MSG_DONTWAIT | (MSG_PEEK if peek else 0))
                except BlockingIOError:
                    if self.ep.shut_rd:
                        return b"", (b"", 0), None
                    continue  # C code read it first: wait for the next one
                entry = bridge.source_of(data, peek)
                if entry is None:
                    remote = self.ep.remote
                    return data, remote if remote is not None else (b"", 0), None
                return data, entry[1], entry[2]

    def _recv_timeout(self) -> Any:
        return "default"

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        data, _, _ = self._recv(flags)
        return data[:bufsize]

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        data, (addr, port), meta = self._recv(flags)
        if not addr:
            return data[:bufsize], None
        last = self._last_source
        if last is None or last[1] != port or last[0] != addr:
            # formatted once per sender, not per datagram (a reply's peer is usually the last's)
            last = self._last_source = (addr, port, self.format(addr, port))
        return data[:bufsize], last[2]

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes == 0 or nbytes > len(view):
            if nbytes > len(view):
                raise ValueError("buffer too small for requested bytes")
            nbytes = len(view)
        data, _, _ = self._recv(flags)
        n = min(nbytes, len(data))
        view[:n] = data[:n]
        return len(data) if flags & MSG_TRUNC else n

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        if nbytes < 0:
            raise ValueError("negative buffersize in recvfrom_into")
        if nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        nbytes = nbytes or len(view)
        data, (addr, port), meta = self._recv(flags)
        n = min(nbytes, len(data))
        view[:n] = data[:n]
        return n, self.format(addr, port) if addr else None

    def recvmsg(
        self, bufsize: int, ancbufsize: int = 0, flags: int = 0
    ) -> tuple[bytes, list[Any], int, Any]:
        if bufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        data, (addr, port), meta = self._recv(flags)
        msg_flags = MSG_TRUNC if len(data) > bufsize else 0
        cmsgs, ctrunc = self._ancillary(meta, ancbufsize)
        return data[:bufsize], cmsgs, msg_flags | ctrunc, self.format(addr, port) if addr else None

    def _ancillary(self, meta: Meta | None, ancbufsize: int) -> tuple[list[A.Cmsg], int]:
        if meta is None or not self.ep.recv_meta:
            return [], 0
        spec_dst = meta.dst
        if self.ep.recv_meta & RECV_PKTINFO and len(spec_dst) == 4 and (
                spec_dst[0] >= 224 or not self.host.ip.is_local_address(spec_dst)):
            # a group or a broadcast: a reply would come from the interface's own address
            with self.driver.lock:
                iface = next((i for i in self.host.ip.interfaces if i.index == meta.ifindex),
                             None)
                own = iface.addresses_of(AF_INET) if iface is not None else []
            spec_dst = own[0] if own else bytes(4)
        return A.fit(A.received_cmsgs(self.family, self.ep.recv_meta, meta.ttl, meta.tos,
                                      meta.dst, meta.ifindex, spec_dst), ancbufsize)

    def recvmsg_into(
        self, buffers: Any, ancbufsize: int = 0, flags: int = 0
    ) -> tuple[int, list[Any], int, Any]:
        views = [memoryview(b).cast("B") for b in buffers]
        data, (addr, port), meta = self._recv(flags)
        offset = 0
        for view in views:
            chunk = data[offset : offset + len(view)]
            view[: len(chunk)] = chunk
            offset += len(chunk)
        msg_flags = MSG_TRUNC if len(data) > offset else 0
        cmsgs, ctrunc = self._ancillary(meta, ancbufsize)
        return offset, cmsgs, msg_flags | ctrunc, self.format(addr, port) if addr else None

    # --------------------------------------------------------------- closing

    def shutdown(self, how: int) -> None:
        self.check_open()
        if how not in (0, 1, 2):
            raise oserror(errno.EINVAL)
        with self.driver.operation():
            if self.ep.remote is None:
                raise oserror(errno.ENOTCONN)
            if how in (0, 2):
                self.ep.shut_rd = True
            if how in (1, 2):
                self.ep.shut_wr = True
            if self.bridge is not None:
                self.bridge.app.shutdown(how)  # C code on the fd: EPIPE / EOF as the kernel's
            self.ep.changed()

    def close_protocol(self) -> None:
        bridge = self.bridge
        if bridge is not None:
            from multisock.api.core import cores_by_fd

            cores_by_fd.pop(bridge.fileno(), None)
            bridge.end()
        self._stack.close(self.ep)

    # --------------------------------------------------------------- options

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        self.check_open()
        ep = self.ep
        with self.driver.lock:
            if level == SOL_MULTISOCK and option == SO_FD_MODE:
                mode = O.as_int(value)
                if mode not in (FD_READINESS, FD_BRIDGED):
                    raise oserror(errno.EINVAL)
                self.fd_mode = mode  # (a bridge already made stays)
            elif level == O.SOL_SOCKET:
                if option == _socket.SO_REUSEADDR:
                    ep.reuseaddr = O.as_bool(value)
                elif option == _socket.SO_REUSEPORT:
                    ep.reuseport = O.as_bool(value)
                elif option == _socket.SO_BROADCAST:
                    ep.broadcast = O.as_bool(value)
                elif option == _socket.SO_RCVBUF:
                    ep.rcvbuf = O.buf_size(value, O.MIN_RCVBUF)
                elif option == _socket.SO_SNDBUF:
                    ep.sndbuf = O.buf_size(value, O.MIN_SNDBUF)
                elif option == _socket.SO_RCVTIMEO:
                    self.rcvtimeo = O.timeval_decode(value)
                elif option == _socket.SO_SNDTIMEO:
                    self.sndtimeo = O.timeval_decode(value)
                elif option in (_socket.SO_KEEPALIVE, _socket.SO_LINGER, _socket.SO_OOBINLINE):
                    pass  # accepted and meaningless for datagrams, as on Linux
                else:
                    raise oserror(errno.ENOPROTOOPT)
            elif O.set_ip_option(ep, self.family, level, option, value):
                pass
            elif (level, option) in _RECV_OPTIONS:
                bit = _RECV_OPTIONS[(level, option)]
                ep.recv_meta = ep.recv_meta | bit if O.as_bool(value) else ep.recv_meta & ~bit
            elif multicast.handles(level, option, self.family):
                if (self.is_ping or self.is_raw) and option in (
                        _socket.IP_ADD_MEMBERSHIP, _socket.IP_DROP_MEMBERSHIP):
                    raise oserror(errno.ENOPROTOOPT)  # (only UDP joins groups here)
                multicast.setsockopt(self.host.ip, self.host.ip.udp, ep, level, option, value)
            else:
                raise oserror(errno.ENOPROTOOPT)

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> int | bytes:
        self.check_open()
        ep = self.ep
        value: int | bytes
        with self.driver.lock:
            if level == SOL_MULTISOCK and option == SO_FD_MODE:
                value = self.fd_mode
            elif level == O.SOL_SOCKET:
                table: dict[int, Any] = {
                    _socket.SO_TYPE: self.type,
                    _socket.SO_DOMAIN: self.family,
                    _socket.SO_PROTOCOL: self.proto or _socket.IPPROTO_UDP,
                    _socket.SO_REUSEADDR: int(ep.reuseaddr),
                    _socket.SO_REUSEPORT: int(ep.reuseport),
                    _socket.SO_BROADCAST: int(ep.broadcast),
                    _socket.SO_RCVBUF: ep.rcvbuf,
                    _socket.SO_SNDBUF: ep.sndbuf,
                    _socket.SO_ACCEPTCONN: 0,
                    _socket.SO_KEEPALIVE: 0,
                }
                if option == _socket.SO_ERROR:
                    value = ep.take_error()
                elif option == _socket.SO_LINGER:
                    value = O.linger_encode(None)
                elif option == _socket.SO_RCVTIMEO:
                    value = O.timeval_encode(self.rcvtimeo)
                elif option == _socket.SO_SNDTIMEO:
                    value = O.timeval_encode(self.sndtimeo)
                elif option in table:
                    value = table[option]
                else:
                    raise oserror(errno.ENOPROTOOPT)
            elif (ip_value := O.get_ip_option(ep, self.family, level, option,
                                              self.host.ip.default_ttl)) is not None:
                value = ip_value
            elif (level, option) in _RECV_OPTIONS:
                value = int(bool(ep.recv_meta & _RECV_OPTIONS[(level, option)]))
            elif multicast.handles(level, option, self.family):
                value = multicast.getsockopt(ep, level, option)
            else:
                raise oserror(errno.ENOPROTOOPT)
        return O.reply(value, buflen)
