"""TCP through the gateway: flows that found no listener on a virtual host, relayed to the
kernel.

A :class:`TcpRelay` sits on one host's TCP stack as its ``no_listener`` callback. A SYN for
an address and port where nothing listens starts a non-blocking kernel ``connect()`` to
where the relay's ``target`` maps it, and is held (dropped; a retransmission is dropped
too) until the connect ends:

* success: the SYN is fed to the stack again, and this time the callback hands it a
  *transparent* listener, so the stack answers it as if a socket listened there; the
  connection it accepts is paired with the kernel socket (a :class:`TcpFlow`);
* refused: the SYN is fed again and answered with RST (the app's ECONNREFUSED);
* unreachable: an ICMP destination-unreachable quoting the SYN (EHOSTUNREACH/ENETUNREACH);
* timed out: nothing; the app's own SYN retries time out (ETIMEDOUT), as they would have.

A flow moves bytes both ways without queueing beyond one chunk: kernel bytes are read only
while the virtual socket's send buffer has room, virtual bytes only while the kernel took
the last chunk. FIN and RST are mirrored (``shutdown(SHUT_WR)``, close with SO_LINGER 0).
Every kernel fd is watched by the driver's epoll; no thread per flow.
"""

from __future__ import annotations

import _socket
import errno as E
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from multisock.gateway import kernel
from multisock.stack.tcp.config import CAN_SEND, TcpState
from multisock.wire import icmpv4, icmpv6, ipv4, ipv6
from multisock.wire.tcp import ACK, RST, SYN

if TYPE_CHECKING:
    from multisock.net.driver import TimerHandle
    from multisock.net.host import Host
    from multisock.stack.tcp.connection import TcpSocket
    from multisock.wire.tcp import TCPHeader

Key = tuple[bytes, int, bytes, int]  # (virtual client, its port, destination, port)
# target(dst, port) -> (family, kernel sockaddr), UNREACHABLE, or None (not relayed: RST)
Target = Callable[[bytes, int], Any]
UNREACHABLE = "unreachable"

CHUNK = 256 * 1024  # the most a flow holds in transit between the two sides, per direction
ACCEPT_TIMEOUT = 30.0  # a connected kernel socket whose virtual side never completed
_CONNECTING, _READY, _REFUSED = 0, 1, 2
_UNREACH_ERRNOS = {E.ENETUNREACH: 0, E.EHOSTUNREACH: 1, E.EADDRNOTAVAIL: 1, E.EAFNOSUPPORT: 1,
                   E.EACCES: 13, E.EPERM: 13}


class _Pending:
    """A SYN held while the kernel connects for it."""

    __slots__ = ("key", "ksock", "syn", "state", "timer")

    def __init__(self, key: Key, ksock: Any, syn: bytes) -> None:
        self.key = key
        self.ksock = ksock
        self.syn = syn
        self.state = _CONNECTING
        self.timer: TimerHandle | None = None


class TcpRelay:
    """Relays one host's listener-less TCP flows to kernel sockets (see the module doc)."""

    def __init__(self, host: Host, target: Target, *, max_flows: int = 65536,
                 backlog: int = 65536) -> None:
        self.host = host
        self.driver: Any = host.driver
        self.target = target
        self.max_flows = max_flows
        self.pending: dict[Key, _Pending] = {}
        self.flows: set[TcpFlow] = set()
        self.counters: dict[str, int] = {"connects": 0, "refused": 0, "unreachable": 0,
                                         "timed_out": 0, "flows": 0, "dropped": 0}
        tcp = host.ip.tcp
        with self.driver.lock:
            self.listeners = {
                family: tcp.transparent_listener(family, backlog)
                for family in (_socket.AF_INET, _socket.AF_INET6)
            }
            for listener in self.listeners.values():
                listener.on_change = self._on_listener
            self._accept_queued = False
            tcp.no_listener = self._no_listener

    # ---------------------------------------------------------------- the stack's hook

    def _no_listener(self, src: bytes, dst: bytes, hdr: TCPHeader, segment: memoryview,
                     now: float) -> TcpSocket | bool | None:
        key = (src, hdr.src_port, dst, hdr.dst_port)
        flags = hdr.flags
        held = self.pending.get(key)
        if held is not None:
            if flags & RST:
                self._drop(held)  # the app gave up while we connected
                return True
            if held.state == _READY:
                return self.listeners[_socket.AF_INET if len(dst) == 4 else _socket.AF_INET6]
            if held.state == _REFUSED:
                self._drop(held)
                return None
            return True if flags & SYN else None
        if not flags & SYN or flags & ACK:
            return None
        target = self.target(dst, hdr.dst_port)
        if target is None:
            return None
        if target == UNREACHABLE:
            self._unreachable(src, dst, bytes(segment), 1)
            return True
        if len(self.pending) + len(self.flows) >= self.max_flows:
            self.counters["dropped"] += 1
            return True  # like a full SYN queue: the app's retransmission may find room
        family, address = target
        try:
            ksock = kernel.open_socket(family, _socket.SOCK_STREAM)
        except OSError:
            self.counters["dropped"] += 1
            return True  # out of fds: dropped, retried by the app
        held = self.pending[key] = _Pending(key, ksock, bytes(segment))
        self.counters["connects"] += 1
        code = ksock.connect_ex(address)
        if code in (E.EINPROGRESS, E.EAGAIN, E.EWOULDBLOCK):
            self.driver.add_writer(ksock.fileno(), lambda: self._connected(held))
        else:
            self.driver.call_soon(self._finish_connect, held, code)
        return True

    # ------------------------------------------------------------------ connecting

    def _connected(self, held: _Pending) -> None:
        self.driver.remove_writer(held.ksock.fileno())
        try:
            code = held.ksock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        except OSError as exc:
            code = exc.errno or E.EBADF
        self._finish_connect(held, code)

    def _finish_connect(self, held: _Pending, code: int) -> None:
        if self.pending.get(held.key) is not held:
            return  # dropped meanwhile
        src, sport, dst, dport = held.key
        tcp = self.host.ip.tcp
        if code == 0:
            held.state = _READY
            held.timer = self.driver.call_at(self.driver.now() + ACCEPT_TIMEOUT,
                                             self._accept_timeout, held)
            tcp.input(src, dst, memoryview(held.syn), self.host.touch())
        elif code == E.ECONNREFUSED:
            self.counters["refused"] += 1
            held.state = _REFUSED
            tcp.input(src, dst, memoryview(held.syn), self.host.touch())
            self._drop(held)
        elif code in _UNREACH_ERRNOS:
            self.counters["unreachable"] += 1
            self._unreachable(src, dst, held.syn, _UNREACH_ERRNOS[code])
            self._drop(held)
        else:
            self.counters["timed_out"] += 1  # the app's own SYN retries run out too
            self._drop(held)

    def _accept_timeout(self, held: _Pending) -> None:
        if self.pending.get(held.key) is held:
            self._drop(held, abort=True)

    def _drop(self, held: _Pending, abort: bool = False) -> None:
        if self.pending.get(held.key) is held:
            del self.pending[held.key]
        if held.timer is not None:
            held.timer.cancel()
        self.driver.remove_writer(held.ksock.fileno())
        if abort:
            kernel.abort(held.ksock)
        else:
            held.ksock.close()

    def _unreachable(self, src: bytes, dst: bytes, syn: bytes, code: int) -> None:
        """An ICMP destination-unreachable from ``dst`` to ``src`` quoting the SYN."""
        ip = self.host.ip
        self.host.touch()
        try:
            if len(src) == 4:
                quoted = ipv4.build(src, dst, ipv4.PROTO_TCP, len(syn)) + syn
                message = icmpv4.build_error(icmpv4.DEST_UNREACH, code, quoted)
                ip.output(dst, src, ipv4.PROTO_ICMP, message)
            else:
                quoted = ipv6.build(src, dst, ipv6.TCP, len(syn)) + syn
                v6code = {0: 0, 1: 3, 13: 1}[code]  # no route, address unreachable, prohibited
                message = icmpv6.build_error(icmpv6.DEST_UNREACH, v6code, quoted)
                ip.output(dst, src, 58, message, csum_offset=icmpv6.CHECKSUM_OFFSET)
        except OSError:
            pass

    # ------------------------------------------------------------------ accepting

    def _on_listener(self) -> None:
        if not self._accept_queued:
            self._accept_queued = True
            self.driver.call_soon(self._accept_all)

    def _accept_all(self) -> None:
        self._accept_queued = False
        now = self.host.touch()
        for listener in self.listeners.values():
            while (child := listener.accept()) is not None:
                assert child.local is not None and child.remote is not None
                key = (child.remote[0], child.remote[1], child.local[0], child.local[1])
                held = self.pending.pop(key, None)
                if held is None or held.state != _READY:
                    child.abort(now)
                    continue
                if held.timer is not None:
                    held.timer.cancel()
                flow = TcpFlow(self, child, held.ksock)
                self.flows.add(flow)
                self.counters["flows"] += 1
                flow.pump()

    def close(self) -> None:
        """Abort every flow and pending connect (the network is going away)."""
        with self.driver.operation():
            for held in list(self.pending.values()):
                self._drop(held, abort=True)
            for flow in list(self.flows):
                flow.abort_both()
            if self.host.ip.tcp.no_listener == self._no_listener:
                self.host.ip.tcp.no_listener = None


class FlowOwner(Protocol):
    """What a flow needs from whoever made it (a relay, a published port)."""

    host: Host
    driver: Any
    flows: set[TcpFlow]


class TcpFlow:
    """One relayed connection: a virtual TCP socket and a kernel one, bytes both ways.

    The virtual socket may still be connecting (a published port's flow): nothing is read
    from the kernel until it can send."""

    __slots__ = ("relay", "v", "k", "fd", "out", "reading", "writing", "k_eof", "v_eof",
                 "done", "queued", "to_virtual", "to_kernel")

    def __init__(self, relay: FlowOwner, vsock: TcpSocket, ksock: Any) -> None:
        self.relay = relay
        self.v = vsock
        self.k = ksock
        self.fd: int = ksock.fileno()
        self.out: memoryview | None = None  # virtual bytes the kernel has not taken yet
        self.reading = False  # the kernel fd is in the driver's read set
        self.writing = False  # ... in its write set
        self.k_eof = False  # the kernel peer's FIN, passed on as the virtual side's FIN
        self.v_eof = False  # the app's FIN, passed on as shutdown(SHUT_WR)
        self.done = False
        self.queued = False
        self.to_virtual = self.to_kernel = 0  # bytes relayed each way
        vsock.on_change = self._changed

    def _changed(self) -> None:
        if not self.queued and not self.done:
            self.queued = True
            self.relay.driver.call_soon(self._run)

    def _run(self) -> None:
        self.queued = False
        self.pump()

    def pump(self) -> None:
        """Move what can move, both ways, then watch the kernel fd for what is blocked."""
        if self.done:
            return
        now = self.relay.host.touch()
        v = self.v
        if v.pending_error or (v.state is TcpState.CLOSED and not self.k_eof):
            self._virtual_reset()
            return
        want_write = self._to_kernel(now)
        if self.done:
            return
        want_read = self._to_virtual(now)
        if self.done:
            return
        if self.k_eof and self.v_eof and self.out is None:
            self._finish(now)
            return
        driver = self.relay.driver
        if want_read != self.reading:
            self.reading = want_read
            if want_read:
                driver.add_reader(self.fd, self.pump)
            else:
                driver.remove_reader(self.fd)
        if want_write != self.writing:
            self.writing = want_write
            if want_write:
                driver.add_writer(self.fd, self.pump)
            else:
                driver.remove_writer(self.fd)

    def _to_kernel(self, now: float) -> bool:
        """Virtual -> kernel; True when blocked on the kernel's send buffer."""
        v, k = self.v, self.k
        while True:
            out = self.out
            if out is not None:
                try:
                    sent = k.send(out)
                except BlockingIOError:
                    return True
                except OSError:
                    self._kernel_reset(now)
                    return False
                self.to_kernel += sent
                if sent < len(out):
                    self.out = out[sent:]
                    return True
                self.out = None
            if v.readable_bytes:
                buf = memoryview(bytearray(min(CHUNK, v.readable_bytes)))
                try:
                    n = v.recv_into(buf, now)
                except OSError:
                    return False  # an error: the next pump sees it
                self.out = buf[:n]
                continue
            if v.fin_received and not self.v_eof:
                self.v_eof = True
                try:
                    k.shutdown(_socket.SHUT_WR)
                except OSError:
                    pass
            return False

    def _to_virtual(self, now: float) -> bool:
        """Kernel -> virtual; True when the kernel fd should be watched for reading."""
        if self.k_eof:
            return False
        v, k = self.v, self.k
        while True:
            if v.state not in CAN_SEND:
                # still connecting, or nothing more may be sent: wait for a change
                return False
            room = v.sndbuf - v.sndq.size
            if room <= 0:
                return False  # backpressure: the ACKs that make room call us again
            try:
                data = k.recv(min(room, CHUNK))
            except BlockingIOError:
                return True
            except OSError:
                self._kernel_reset(now)
                return False
            if not data:
                self.k_eof = True
                try:
                    v.shutdown(_socket.SHUT_WR, now)
                except OSError:
                    pass
                return False
            self.to_virtual += len(data)
            try:
                v.send(data, now)
            except OSError:
                self._virtual_reset()
                return False

    def _kernel_reset(self, now: float) -> None:
        """The kernel peer reset (or the kernel socket failed): reset the app's side."""
        self.v.abort(now)
        self._release()
        self.k.close()

    def _virtual_reset(self) -> None:
        """The app's side was reset or timed out: reset the kernel peer (SO_LINGER 0)."""
        now = self.relay.host.touch()
        self.v.close(now)
        self._release()
        kernel.abort(self.k)

    def _finish(self, now: float) -> None:
        """Both FINs passed on and everything delivered: close both sides gracefully."""
        self.v.close(now)
        self._release()
        self.k.close()

    def abort_both(self) -> None:
        self.v.abort(self.relay.host.touch())
        self._release()
        kernel.abort(self.k)

    def _release(self) -> None:
        self.done = True
        self.v.on_change = None
        driver = self.relay.driver
        if self.reading:
            driver.remove_reader(self.fd)
        if self.writing:
            driver.remove_writer(self.fd)
        self.reading = self.writing = False
        self.relay.flows.discard(self)
