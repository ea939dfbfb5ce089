"""The TCP layer of one host: demultiplexing, listeners, SYN cookies, timers, counters.

``TcpStack`` is what the IP layer talks to (``input``, ``icmp_unreachable``,
``on_timer``); the sockets facade creates control blocks with ``socket()``. Nothing
here raises out of ``input`` or ``on_timer``: a bad segment is counted and dropped.
"""

from __future__ import annotations

import errno as E
import os
import random
import socket as _socket
import struct
from collections import Counter, deque
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Final, Protocol

from multisock.stack.icmp_quote import clamp_path_mtu
from multisock.stack.tcp import isn
from multisock.stack.tcp.config import SYNCHRONIZED, TcpConfig, TcpState
from multisock.stack.tcp.connection import OPTION_NAMES, TcpSocket, window_scale_for
from multisock.stack.tcp.info import History
from multisock.stack.tcp.ports import PortTable
from multisock.stack.tcp.seq import MASK
from multisock.stack.tcp.timers import TimerHeap
from multisock.stack.tcp.timewait import TimeWait, TimeWaitQueue
from multisock.wire import tcp as wire
from multisock.wire.errors import MalformedPacket
from multisock.wire.tcp import ACK, FIN, RST, SYN, TCPHeader


def _log() -> Any:
    """The "multisock.tcp" logger, imported on first use: ``logging`` costs ~0.6 MiB of
    RSS and is needed only when something went wrong or transitions are logged."""
    import logging

    return logging.getLogger("multisock.tcp")
_PORTS_SEQ: Final = struct.Struct("!HHI")
_OPTIONS: Final = attrgetter(*OPTION_NAMES)  # the socket options a child inherits, in one C call
# (an Enum member read through its class costs ~70 ns: the per-segment path uses these)
# (Final: compiled code keeps them in C statics rather than reading the module's dict)
_CLOSED: Final = TcpState.CLOSED
_TIME_WAIT: Final = TcpState.TIME_WAIT
_SYN_RECEIVED: Final = TcpState.SYN_RECEIVED
_NO_ROOM: Final = object()  # _cookie_ack: the cookie is valid but the accept queue is full
Key = tuple[bytes, int, bytes, int]
# ``TcpStack.no_listener``: (src, dst, header, segment, now) -> a listener to take the
# segment, True (taken: drop it quietly, e.g. held until a relay is ready), or None (RST)
NoListener = Callable[[bytes, bytes, TCPHeader, memoryview, float], "TcpSocket | bool | None"]


class TcpHost(Protocol):
    def tcp_output(
        self, src: bytes, dst: bytes, segment: bytes | bytearray | memoryview,
        ttl: int | None = None, tos: int = 0, payload: bytes | memoryview = b"",
        gso: int = 0,
    ) -> None:
        """Send ``segment`` (+ ``payload``, when the header and data come apart); ``gso``:
        cut the payload at this size (a segment of several MSS, see ``route_gso``)."""
    def route_mtu(self, dst: bytes) -> int | None: ...
    def route_gso(self, dst: bytes) -> int: ...
    def select_source(self, dst: bytes) -> bytes | None: ...
    def is_local_address(self, addr: bytes) -> bool: ...


class _Busy:
    """Context manager marking the stack as inside an operation (see ``TcpStack.busy``)."""

    __slots__ = ("stack", "now")

    def __init__(self, stack: TcpStack) -> None:
        self.stack = stack
        self.now = 0.0

    def __enter__(self) -> None:
        self.stack._depth += 1

    def __exit__(self, *exc: object) -> None:
        self.stack.leave(self.now)


def _listener_rank(sock: TcpSocket, dst: bytes) -> int:
    """How well a listener matches a SYN for ``dst``: 2 its own address, 1 a wildcard of the
    same family, 0 an IPv6 wildcard taking IPv4 (not v6only), -1 not at all."""
    assert sock.local is not None
    mine = sock.local[0]
    if mine == dst:
        return 2
    if not any(mine):
        if len(mine) == len(dst):
            return 1
        if len(dst) == 4 and not sock.v6only:
            return 0
    return -1


class TcpStack:
    def __init__(
        self,
        host: TcpHost,
        config: TcpConfig | None = None,
        rng: random.Random | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.host = host
        self.config = config or TcpConfig()
        self.rng = rng or random.Random()
        self.secret = secret if secret is not None else self.rng.randbytes(32)
        self._counters: Counter[str] = Counter()
        # the two counts every segment bumps, as plain ints (``counters`` folds them in)
        self.segments_in = 0
        self.segments_out = 0
        self.timers = TimerHeap()
        self.time_wait = TimeWaitQueue(self)  # records of closed connections in TIME-WAIT
        self.ports = PortTable(
            self.rng, self.config.ephemeral_low, self.config.ephemeral_high, host
        )
        # a connection closed by its application is a TimeWait record during TIME-WAIT
        self.conns: dict[Key, TcpSocket | TimeWait] = {}
        self.listeners: dict[int, list[TcpSocket]] = {}
        self.transitions: deque[tuple[float, str, str, str]] = deque(maxlen=1000)
        # final rows of finished connections, for --stats summaries (bounded)
        self.history = History(1000)
        self._depth = 0
        self._busy = _Busy(self)
        self._pending: deque[tuple[bytes, bytes, bytes, float]] = deque()
        self._dirty: list[TcpSocket] = []
        self._challenge_window = -1.0
        self._challenge_count = 0
        self.last_exception: BaseException | None = None
        # asked before a segment for no connection and no listener is answered with RST:
        # the host gateway (multisock/gateway) terminates such flows itself; None: plain RST
        self.no_listener: NoListener | None = None

    # ------------------------------------------------------------ host-facing API

    @property
    def counters(self) -> Counter[str]:
        """Events by name (a name never counted reads 0): for tests, stats and the CLI.

        The per-segment counts live in int attributes, folded in here: a Counter is a dict
        subclass, whose item reads go through a Python-level slot (a method lookup and a
        call) that each segment would otherwise pay, in both builds."""
        counters = self._counters
        if self.segments_in:
            counters["segments_in"] = self.segments_in
        if self.segments_out:
            counters["segments_out"] = self.segments_out
        return counters

    def socket(self, family: int) -> TcpSocket:
        if family not in (_socket.AF_INET, _socket.AF_INET6):
            raise OSError(E.EAFNOSUPPORT, os.strerror(E.EAFNOSUPPORT))
        return TcpSocket(self, family)

    def input(self, src: bytes, dst: bytes, segment: memoryview, now: float,
              payload: memoryview | None = None) -> None:
        """One segment for this host. ``payload`` given: ``segment`` is only the TCP header
        and the payload came apart from it (a large segment from an in-process link, never
        joined: ``IPStack.input_split``)."""
        if self._depth:
            # re-entered from our own output (loopback): handle after the current operation
            whole = bytes(segment) if payload is None else b"".join((segment, payload))
            self._pending.append((src, dst, whole, now))
            return
        self._depth += 1
        try:
            self._input(src, dst, segment, now, payload)
        except Exception as exc:  # never let a packet crash the driver
            self.counters["internal_errors"] += 1
            self.last_exception = exc
            _log().exception("TCP input failed")
        finally:
            self.leave(now)

    def on_timer(self, now: float) -> None:
        with self.busy(now):
            for owner in self.timers.pop_due(now):
                try:
                    owner.on_timer(now)
                except Exception as exc:
                    self.counters["internal_errors"] += 1
                    self.last_exception = exc
                    _log().exception("TCP timer failed")

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def icmp_unreachable(
        self,
        src: bytes,
        dst: bytes,
        quoted: memoryview,
        errno: int,
        now: float,
        mtu: int | None = None,
    ) -> bool:
        """An ICMP error quoting a segment we sent (src = us, dst = the peer). True when it
        is believed: it names a connection and a sequence number between snd_una and
        snd_nxt (RFC 5927, Linux's tcp_v4_err); only then may the IP layer learn ``mtu``."""
        try:
            if len(quoted) < 8:
                return False
            sport, dport, seq = _PORTS_SEQ.unpack_from(quoted)
            sock = self.conns.get((src, sport, dst, dport))
            if sock is None:
                return False
            una = sock.snd_una & MASK
            if ((seq - una) & MASK) > ((sock.snd_max - sock.snd_una) & MASK):
                self.counters["icmp_out_of_window"] += 1  # RFC 5927: not a segment in flight
                return False
            self.counters["icmp_errors"] += 1
            if isinstance(sock, TimeWait):
                return False  # everything was acknowledged and nobody is left to tell
            with self.busy(now):
                if mtu is not None:
                    sock.path_mtu_changed(clamp_path_mtu(mtu, len(dst) == 16), now)
                    return True
                if sock.state is TcpState.SYN_SENT and errno:
                    sock._finish(now, errno)
                elif sock.state is TcpState.SYN_RECEIVED and sock.parent is not None:
                    if errno == E.ECONNREFUSED:
                        sock._finish(now, 0)
                else:
                    sock.soft_error = errno  # RFC 5461: soft in synchronized states
            return True
        except Exception as exc:
            self.counters["internal_errors"] += 1
            self.last_exception = exc
            return False

    def transparent_listener(self, family: int, backlog: int) -> TcpSocket:
        """A listener for any address and port, in neither the listener table nor the port
        table: what a ``no_listener`` callback returns to have a segment accepted as if a
        socket listened on its destination (IP_TRANSPARENT + TPROXY's idea; slirp's)."""
        sock = TcpSocket(self, family)
        sock.local = (bytes(4 if family == _socket.AF_INET else 16), 0)
        sock.backlog = backlog
        sock.accept_queue = deque()
        sock.state = TcpState.LISTEN
        return sock

    def connections(self) -> list[dict[str, Any]]:
        from multisock.stack.tcp.info import connection_table

        return connection_table(self)

    # ------------------------------------------------------------ engine internals

    def busy(self, now: float) -> _Busy:
        """Hold input re-entry and on_change calls until the outermost operation ends."""
        busy = self._busy
        busy.now = now
        return busy

    def leave(self, now: float) -> None:
        """One level of ``busy`` (or of input) ends; the outermost runs what waited for it:
        input re-entered from our own output, and the sockets' on_change callbacks."""
        self._depth -= 1
        if not self._depth and (self._pending or self._dirty):
            self._drain(now)

    def _drain(self, now: float) -> None:
        pending = self._pending
        while pending:
            src, dst, seg, when = pending.popleft()
            self.input(src, dst, memoryview(seg), when)
        dirty = self._dirty
        while dirty:
            self._dirty = []
            for sock in dirty:
                sock._dirty = False
                callback = sock.on_change
                if callback is not None:
                    try:
                        callback()
                    except Exception as exc:
                        self.counters["callback_errors"] += 1
                        self.last_exception = exc
            dirty = self._dirty

    def touch(self, sock: TcpSocket) -> None:
        if sock._dirty:
            return
        if self._depth:
            sock._dirty = True
            self._dirty.append(sock)
        elif sock.on_change is not None:
            sock.on_change()

    def emit(self, src: bytes, dst: bytes, segment: bytes, ttl: int | None = None,
             tos: int = 0, payload: bytes | memoryview = b"") -> None:
        self.segments_out += 1
        if len(payload):
            self.host.tcp_output(src, dst, segment, ttl, tos, payload)
        else:
            self.host.tcp_output(src, dst, segment, ttl, tos)

    def transition(self, sock: TcpSocket | TimeWait, old: TcpState, new: TcpState, now: float) -> None:
        if self.config.log_transitions:
            name = f"{sock.local}->{sock.remote}"
            self.transitions.append((now, name, old.name, new.name))
            _log().info("%.6f %s %s -> %s", now, name, old.name, new.name)

    def oow_ack_allowed(self, owner: TcpSocket | TimeWait, now: float, counter: str) -> bool:
        """May ``owner`` answer a segment that did not advance it with an ACK now?

        Linux's ``tcp_invalid_ratelimit`` (tcp_oow_rate_limited): one such ACK per
        connection per ``invalid_ratelimit`` seconds. Two ends that each take the other's
        ACK for invalid (a forged segment desynchronised them, or a LAND SYN made a
        connection with itself) would otherwise answer each other for ever; limited, the
        loop dies after one round. ``counter`` counts the ACKs not sent."""
        if now - owner.last_oow_ack < self.config.invalid_ratelimit:
            self.counters[counter] += 1
            return False
        owner.last_oow_ack = now
        return True

    def challenge_ack_allowed(self, owner: TcpSocket | TimeWait, now: float) -> bool:
        """RFC 5961 §7 challenge ACKs: first the connection's own rate limit, then the
        host-wide budget, if one is configured.

        A fixed host-wide budget is the side channel of CVE-2016-5696: an attacker spends
        it with his own connection and counts the challenge ACKs he gets back, so a spoofed
        probe that hit a live 4-tuple shows as one missing. The per-connection limit comes
        first (an attacker cannot drain it for a connection he does not know), and the
        budget, when set, is drawn at random each second in [limit/2, limit*3/2) as Linux
        draws it."""
        if not self.oow_ack_allowed(owner, now, "challenge_acks_skipped"):
            return False
        limit = self.config.challenge_ack_limit
        if limit < 0x7FFFFFFF:
            second = float(int(now))
            if second != self._challenge_window:
                self._challenge_window = second
                half = (limit + 1) >> 1
                self._challenge_count = self.rng.randint(half, max(limit + half - 1, half))
            if self._challenge_count <= 0:
                self.counters["challenge_acks_limited"] += 1
                return False
            self._challenge_count -= 1
        self.counters["challenge_acks"] += 1
        return True

    def register(self, sock: TcpSocket) -> None:
        assert sock.local is not None and sock.remote is not None
        self.conns[(sock.local[0], sock.local[1], sock.remote[0], sock.remote[1])] = sock

    def unregister(self, sock: TcpSocket, replacement: TimeWait | None = None) -> None:
        """``sock`` leaves the connection table (for ``replacement``, its TIME-WAIT record,
        when given); its final row goes to ``history``."""
        if sock.local is not None and sock.remote is not None:
            key = (sock.local[0], sock.local[1], sock.remote[0], sock.remote[1])
            if self.conns.get(key) is sock:
                if replacement is None:
                    del self.conns[key]
                else:
                    self.conns[key] = replacement
                self.history.record(sock)
        if sock.state is _CLOSED:
            self.remove_listener(sock)
            self.ports.release(sock)

    def add_listener(self, sock: TcpSocket) -> None:
        assert sock.local is not None
        self.listeners.setdefault(sock.local[1], []).append(sock)

    def remove_listener(self, sock: TcpSocket) -> None:
        if sock.local is None:
            return
        group = self.listeners.get(sock.local[1])
        if group and sock in group:
            group.remove(sock)
            if not group:
                del self.listeners[sock.local[1]]

    def children_of(self, listener: TcpSocket) -> list[TcpSocket]:
        return [
            s
            for s in self.conns.values()
            if s.parent is listener and isinstance(s, TcpSocket) and s.state is TcpState.SYN_RECEIVED
        ]

    def _new_child(self, listener: TcpSocket, src: bytes, dst: bytes, hdr: TCPHeader,
                   now: float) -> TcpSocket:
        """A control block for a connection arriving at ``listener`` (from a SYN, or from a
        SYN cookie's ACK): the listener's options, both addresses, the path's MSS."""
        child = TcpSocket(self, listener.family)
        inherited = _OPTIONS(listener)
        if inherited != _OPTIONS(child):  # (a listener usually has the defaults: no copy)
            for name, value in zip(OPTION_NAMES, inherited, strict=True):
                setattr(child, name, value)
        if listener.keepalive:
            child.keepalive = True
        child.parent = listener
        child.local = (dst, hdr.dst_port)
        child.remote = (src, hdr.src_port)
        child.created = now
        mtu = self.host.route_mtu(src)
        child._init_mss(mtu if mtu is not None else 576, self.host.route_gso(src))
        return child

    def _find_listener(self, dst: bytes, dport: int, src: bytes, sport: int) -> TcpSocket | None:
        group = self.listeners.get(dport)
        if not group:
            return None
        if len(group) == 1:  # the usual case: one listener on the port, nothing to rank
            return group[0] if _listener_rank(group[0], dst) >= 0 else None
        best: list[TcpSocket] = []
        rank = -1
        for sock in group:
            r = _listener_rank(sock, dst)
            if r < 0:
                continue
            if r > rank:
                best, rank = [sock], r
            elif r == rank:
                best.append(sock)
        if not best:
            return None
        if len(best) == 1:
            return best[0]
        # SO_REUSEPORT group: spread connections by a hash of the 4-tuple
        return best[hash((src, sport, dst, dport)) % len(best)]

    # ------------------------------------------------------------ segment arrival

    def _input(self, src: bytes, dst: bytes, segment: memoryview, now: float,
               payload: memoryview | None) -> None:
        self.segments_in += 1
        if payload is not None and (len(segment) < 20 or (segment[12] >> 4) * 4 != len(segment)):
            # (split elsewhere than at the header's data offset: parse it whole)
            segment, payload = memoryview(b"".join((segment, payload))), None
        try:
            hdr, rest = wire.parse(segment)
        except MalformedPacket as exc:
            counters = self.counters
            counters["bad_segments"] += 1
            counters["bad_" + exc.reason.replace(" ", "_")] += 1
            return
        if payload is None:
            payload = rest
        flags = hdr.flags
        if hdr.src_port == 0 or hdr.dst_port == 0 or (flags & SYN and flags & (FIN | RST)):
            self.counters["bad_segments"] += 1
            return
        sock = self.conns.get((dst, hdr.dst_port, src, hdr.src_port))
        if sock is not None:
            if (
                sock.state is _TIME_WAIT
                and flags & SYN
                and not flags & ACK
                and self._time_wait_reuse(sock, hdr, now)
            ):
                sock = None
            else:
                sock.segment(hdr, payload, now)
                return
        listener = self._find_listener(dst, hdr.dst_port, src, hdr.src_port)
        if listener is not None and not listener.closed:
            self._listen_input(listener, src, dst, hdr, payload, now)
            return
        fallback = self.no_listener
        if fallback is not None:
            if len(segment) == hdr.data_offset and payload:  # came split: the hook sees it whole
                segment = memoryview(b"".join((segment, payload)))
            taken = fallback(src, dst, hdr, segment, now)
            if isinstance(taken, TcpSocket):
                self._listen_input(taken, src, dst, hdr, payload, now)
                return
            if taken:
                return
        self._reply_rst(src, dst, hdr, len(payload))

    def _time_wait_reuse(self, sock: TcpSocket | TimeWait, hdr: TCPHeader, now: float) -> bool:
        """A new SYN may end a TIME-WAIT early when it is clearly newer (RFC 6191 spirit)."""
        newer = ((hdr.seq - sock.rcv_nxt) & MASK) < 0x80000000 and hdr.seq != sock.rcv_nxt & MASK
        if sock.ts_ok and hdr.ts_val is not None:
            newer = ((hdr.ts_val - sock.ts_recent) & MASK) < 0x80000000
        if not newer:
            return False
        self.counters["time_wait_recycled"] += 1
        sock._finish(now, 0)
        return True

    def _reply_rst(self, src: bytes, dst: bytes, hdr: TCPHeader, paylen: int) -> None:
        """RFC 9293 §3.10.7.1: a segment for no connection is answered with a reset."""
        flags = hdr.flags
        if flags & RST:
            return
        self.counters["no_socket"] += 1
        if flags & ACK:
            out = wire.build(hdr.dst_port, hdr.src_port, hdr.ack, 0, RST, 0)
        else:
            seglen = paylen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            out = wire.build(hdr.dst_port, hdr.src_port, 0, (hdr.seq + seglen) & MASK, RST | ACK, 0)
        self.counters["rst_sent"] += 1
        self.emit(dst, src, out)

    def _listen_input(
        self,
        listener: TcpSocket,
        src: bytes,
        dst: bytes,
        hdr: TCPHeader,
        payload: memoryview,
        now: float,
    ) -> None:
        flags = hdr.flags
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self.config.syncookies:
                child = self._cookie_ack(listener, src, dst, hdr, now)
                if child is _NO_ROOM:
                    return  # a valid cookie, a full accept queue: dropped, the peer retries
                if isinstance(child, TcpSocket):
                    child.segment(hdr, payload, now)
                    return
            self._reply_rst(src, dst, hdr, len(payload))
            return
        if not flags & SYN:
            return
        cfg = self.config
        if len(listener.accept_queue) >= max(listener.backlog, 1):
            self.counters["listen_overflows"] += 1
            self.counters["listen_drops"] += 1
            return
        syn_limit = min(cfg.max_syn_backlog, max(listener.backlog, 1))
        if listener.syn_count >= syn_limit:
            if cfg.syncookies:
                self._send_cookie(listener, src, dst, hdr, now)
            else:
                self.counters["listen_drops"] += 1
            return
        child = self._new_child(listener, src, dst, hdr, now)
        child._init_rcv_wscale()
        child.iss = isn.initial_sequence(self.secret, dst, hdr.dst_port, src, hdr.src_port, now)
        child.snd_una = child.snd_nxt = child.snd_max = child.iss
        child.irs = hdr.seq
        child.rcv_nxt = child.rcv_acked = hdr.seq + 1
        child.ts_offset = isn.ts_offset(self.secret, dst, src)
        child._negotiate(hdr, now)
        child.snd_wnd = hdr.window
        child.was_connected = True
        child.state = _SYN_RECEIVED
        if cfg.log_transitions:
            self.transition(child, TcpState.LISTEN, TcpState.SYN_RECEIVED, now)
        listener.syn_count += 1
        self.register(child)
        self.ports.add_child(child)
        child._send_syn(now)
        child._arm_rexmit(now)

    def _send_cookie(
        self, listener: TcpSocket, src: bytes, dst: bytes, hdr: TCPHeader, now: float
    ) -> None:
        """A stateless SYN-ACK: the ISN carries the MSS; with timestamps, our TSval carries
        the peer's window scale and SACK-permitted (isn.cookie_timestamp), so those are
        offered too. Without timestamps the connection gets the MSS only, as in Linux."""
        mtu = self.host.route_mtu(src) or 576
        ours = mtu - (40 if len(src) == 4 else 60)
        mss = min(hdr.mss or 536, ours)
        cookie = isn.make_cookie(
            self.secret, dst, hdr.dst_port, src, hdr.src_port, hdr.seq, mss, now
        )
        cfg = self.config
        ts: tuple[int, int] | None = None
        wscale: int | None = None
        sack = False
        if cfg.timestamps and hdr.ts_val is not None:
            peer_wscale = hdr.wscale if cfg.window_scaling else None
            sack = cfg.sack and hdr.sack_permitted
            ts_now = (int(now * 1000) + isn.ts_offset(self.secret, dst, src)) & MASK
            ts = (isn.cookie_timestamp(ts_now, peer_wscale, sack), hdr.ts_val)
            if peer_wscale is not None:
                wscale = window_scale_for(listener.rcvbuf)
        out = wire.build(
            hdr.dst_port,
            hdr.src_port,
            cookie,
            (hdr.seq + 1) & MASK,
            SYN | ACK,
            min(listener.rcvbuf, 0xFFFF),
            mss=ours,
            wscale=wscale,
            sack_permitted=sack,
            ts=ts,
        )
        self.counters["syncookies_sent"] += 1
        self.emit(dst, src, out)

    def _cookie_ack(
        self, listener: TcpSocket, src: bytes, dst: bytes, hdr: TCPHeader, now: float
    ) -> TcpSocket | object | None:
        """The connection a valid cookie ACK opens; None for an invalid cookie (answered with
        RST), ``_NO_ROOM`` when the accept queue is full (Linux drops it, no RST, unless
        tcp_abort_on_overflow: the client's retransmission finds room later)."""
        cookie = (hdr.ack - 1) & MASK
        peer_isn = (hdr.seq - 1) & MASK
        mss = isn.check_cookie(
            self.secret, dst, hdr.dst_port, src, hdr.src_port, peer_isn, cookie, now
        )
        if mss is None:
            self.counters["syncookies_failed"] += 1
            return None
        # what the cookie's timestamp echo says the peer offered (Linux's
        # cookie_timestamp_decode): an echo claiming options we do not do is forged
        cfg = self.config
        wscale: int | None = None
        sack = False
        if hdr.ts_val is not None:
            wscale, sack = isn.cookie_options(hdr.ts_ecr or 0)
            if (
                not cfg.timestamps
                or (sack and not cfg.sack)
                or (wscale is not None and not cfg.window_scaling)
            ):
                self.counters["syncookies_failed"] += 1
                return None
        if len(listener.accept_queue) >= max(listener.backlog, 1):
            self.counters["listen_overflows"] += 1
            return _NO_ROOM
        self.counters["syncookies_recv"] += 1
        child = self._new_child(listener, src, dst, hdr, now)
        child.ts_offset = isn.ts_offset(self.secret, dst, src)
        if hdr.ts_val is not None:
            child.ts_ok = True
            child.ts_recent = hdr.ts_val
        child.sack_ok = sack
        if wscale is not None:
            child.ws_ok = True
            child.snd_wscale = wscale
            child._init_rcv_wscale()  # what the SYN-ACK offered: the same buffer's scale
        else:
            child.rcv_wscale = 0
        child.iss = cookie
        child.snd_una = child.snd_nxt = child.snd_max = cookie + 1
        child.irs = peer_isn
        child.rcv_nxt = child.rcv_acked = peer_isn + 1
        child.rcv_adv = child.rcv_nxt + min(child.rcvbuf, 0xFFFF)
        child.peer_mss = mss
        child._set_mss()
        from multisock.stack.tcp.congestion import make_congestion_control

        child.cc = make_congestion_control(child.congestion, child.mss, now)
        child.snd_wnd = hdr.window << child.snd_wscale
        child.max_sndwnd = child.snd_wnd
        child.snd_wl1 = peer_isn
        child.snd_wl2 = cookie + 1
        child.was_connected = True
        child.state = TcpState.SYN_RECEIVED
        self.register(child)
        self.ports.add_child(child)
        child._established(now)
        child.parent = None
        listener.accept_queue.append(child)
        self.touch(listener)
        return child

    def synchronized(self) -> int:
        return sum(1 for s in self.conns.values() if s.state in SYNCHRONIZED)
