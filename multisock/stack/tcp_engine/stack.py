"""The TCP layer of one host: demultiplexing, ports, listeners, SYN cookies, timers, RSTs.

Connections live in a 4-tuple table keyed by wire addresses; listeners by port.
Every control block's timers are folded into one heap with lazy invalidation: a
block is pushed only when its earliest deadline moves *earlier*, and a popped
entry that no longer matches the block's ``next_wakeup`` is skipped.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import os
import random
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, Protocol

from multisock.stack import addresses as A
from multisock.stack.icmp_limit import TokenBucket
from multisock.stack.tcp_engine.config import TcpConfig, TcpState
from multisock.stack.tcp_engine.control import INF, TcpSocket
from multisock.stack.tcp_engine.isn import check_cookie, initial_sequence, make_cookie
from multisock.stack.tcp_engine.seq import MASK, unwrap
from multisock.wire import tcp as wire
from multisock.wire.errors import MalformedPacket
from multisock.wire.tcp import ACK, FIN, RST, SYN

S = TcpState


class TcpHost(Protocol):
    def tcp_output(self, src: bytes, dst: bytes, header: bytes,
                   payload: bytes | memoryview = b"") -> None: ...
    def route_mtu(self, dst: bytes) -> int | None: ...
    def select_source(self, dst: bytes) -> bytes | None: ...
    def is_local_address(self, addr: bytes) -> bool: ...


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _wire_addr(addr: bytes) -> bytes:
    return addr[12:] if A.is_v4mapped(addr) else addr


def _covers(sock: TcpSocket, v4: bool) -> bool:
    assert sock.local is not None
    addr = sock.local[0]
    if v4:
        return len(addr) == 4 or (addr == A.ANY6 and not sock.v6only)
    return len(addr) == 16


def _overlap(a: TcpSocket, b: TcpSocket) -> bool:
    assert a.local is not None and b.local is not None
    for v4 in (True, False):
        if _covers(a, v4) and _covers(b, v4):
            x, y = a.local[0], b.local[0]
            if v4:
                x = x if len(x) == 4 else bytes(4)
                y = y if len(y) == 4 else bytes(4)
            if A.is_wildcard(x) or A.is_wildcard(y) or x == y:
                return True
    return False


class TcpStack:
    def __init__(self, host: TcpHost, config: TcpConfig | None = None,
                 rng: random.Random | None = None, secret: bytes | None = None) -> None:
        self.host = host
        self.config = config or TcpConfig()
        self.rng = rng or random.Random()
        self.secret = secret or self.rng.getrandbits(256).to_bytes(32, "big")
        self.conns: dict[tuple[bytes, int, bytes, int], TcpSocket] = {}
        self.ports: dict[int, list[TcpSocket]] = {}
        self.listeners: dict[int, list[TcpSocket]] = {}
        self._heap: list[tuple[float, int, TcpSocket]] = []
        self._seq = itertools.count()
        self.counters: Counter[str] = Counter()
        self.transition_log: list[tuple[float, str, str, str]] | None = None
        self.on_transition: Callable[[TcpSocket, TcpState, TcpState], None] | None = None
        self._challenge = TokenBucket(rate=float(self.config.challenge_ack_limit),
                                      burst=float(self.config.challenge_ack_limit))
        self._rst_limit = TokenBucket(rate=1000.0, burst=200.0)
        # final TCP_INFO of finished connections, for --stats style summaries (bounded)
        self.history: deque[dict[str, Any]] = deque(maxlen=1000)

    # ================================================================ sockets

    def socket(self, family: int) -> TcpSocket:
        return TcpSocket(self, family)

    def bind(self, sock: TcpSocket, addr: bytes, port: int) -> None:
        wire_addr = _wire_addr(addr) if sock.family == A.AF_INET6 else addr
        if sock.family == A.AF_INET6 and A.is_v4mapped(addr) and sock.v6only:
            raise _err(errno.EADDRNOTAVAIL)
        if not A.is_wildcard(wire_addr) and not self.host.is_local_address(wire_addr):
            raise _err(errno.EADDRNOTAVAIL)
        if port:
            sock.local = (wire_addr, port)
            if self._bind_conflict(sock, port):
                sock.local = None
                raise _err(errno.EADDRINUSE)
            self.ports.setdefault(port, []).append(sock)
            return
        sock.local = (wire_addr, self._ephemeral(sock, None))
        self.ports.setdefault(sock.local[1], []).append(sock)

    def _bind_conflict(self, sock: TcpSocket, port: int) -> bool:
        for other in self.ports.get(port, ()):
            if other is sock or other.local is None or not _overlap(sock, other):
                continue
            if sock.reuseport and other.reuseport:
                continue
            if other.state is S.TIME_WAIT and sock.reuseaddr:
                continue
            if sock.reuseaddr and other.reuseaddr and other.state is not S.LISTEN:
                continue
            return True
        return False

    def _ephemeral(self, sock: TcpSocket, remote: tuple[bytes, int] | None) -> int:
        """RFC 6056 randomised port; may share a port with connections to other peers."""
        low, high = self.config.ephemeral_low, self.config.ephemeral_high
        span = high - low + 1
        start = self.rng.randrange(span)
        for i in range(span):
            port = low + (start + i) % span
            users = self.ports.get(port)
            if not users:
                return port
            if remote is None:
                continue
            clash = False
            for other in users:
                if other.remote is None or other.state is S.LISTEN:
                    clash = True
                    break
                if other.remote == remote and sock.local is not None and other.local is not None and (
                        A.is_wildcard(sock.local[0]) or other.local[0] == sock.local[0]):
                    clash = True
                    break
            if not clash:
                return port
        raise _err(errno.EADDRNOTAVAIL)

    def check_listen(self, sock: TcpSocket) -> None:
        assert sock.local is not None
        for other in self.ports.get(sock.local[1], ()):
            if other is sock or other.local is None or not _overlap(sock, other):
                continue
            if sock.reuseport and other.reuseport:
                continue
            if other.state is S.LISTEN or other.state is S.TIME_WAIT and not sock.reuseaddr:
                raise _err(errno.EADDRINUSE)

    def add_listener(self, sock: TcpSocket) -> None:
        assert sock.local is not None
        self.listeners.setdefault(sock.local[1], []).append(sock)

    def remove_listener(self, sock: TcpSocket) -> None:
        if sock.local is None:
            return
        listeners = self.listeners.get(sock.local[1])
        if listeners and sock in listeners:
            listeners.remove(sock)
            if not listeners:
                del self.listeners[sock.local[1]]

    def prepare_connect(self, sock: TcpSocket, addr: bytes, port: int, now: float) -> None:
        remote = _wire_addr(addr) if sock.family == A.AF_INET6 else addr
        if sock.family == A.AF_INET6 and len(remote) == 4 and sock.v6only:
            raise _err(errno.ENETUNREACH)
        if A.is_wildcard(remote):
            remote = A.LOOPBACK4 if len(remote) == 4 else A.LOOPBACK6
        if A.is_multicast(remote) or A.is_v4_broadcast(remote):
            raise _err(errno.ENETUNREACH)
        source = self.host.select_source(remote)
        if source is None or self.host.route_mtu(remote) is None:
            raise _err(errno.ENETUNREACH)
        if sock.local is not None and not A.is_wildcard(sock.local[0]):
            if len(sock.local[0]) != len(remote):
                raise _err(errno.EAFNOSUPPORT if sock.family == A.AF_INET else errno.ENETUNREACH)
            source = sock.local[0]
        if sock.local is None:
            sock.local = (source, 0)
            port_number = self._ephemeral(sock, (remote, port))
            sock.local = (source, port_number)
            self.ports.setdefault(port_number, []).append(sock)
        else:
            sock.local = (source, sock.local[1])
        key = (source, sock.local[1], remote, port)
        existing = self.conns.get(key)
        if existing is not None and existing is not sock:
            if existing.state is S.TIME_WAIT:
                existing._terminate(now)
            else:
                raise _err(errno.EADDRNOTAVAIL)
        sock.remote = (remote, port)
        sock.wire_local = source
        sock.wire_remote = remote
        self.conns[key] = sock

    def initial_sequence(self, sock: TcpSocket, now: float) -> int:
        return initial_sequence(self.secret, sock.wire_local, sock.local_port, sock.wire_remote,
                                sock.remote_port, now)

    def release(self, sock: TcpSocket) -> None:
        """Forget a CLOSED block: connection table, port and listener registrations."""
        if sock.remote is not None and sock.segs_in:
            self.history.append(self._row(sock))
        if sock.local is not None and sock.remote is not None:
            key = (sock.wire_local, sock.local[1], sock.wire_remote, sock.remote[1])
            if self.conns.get(key) is sock:
                del self.conns[key]
        if sock.local is not None:
            users = self.ports.get(sock.local[1])
            if users and sock in users:
                users.remove(sock)
                if not users:
                    del self.ports[sock.local[1]]
        self.remove_listener(sock)

    def to_accept_queue(self, listener: TcpSocket, child: TcpSocket, now: float) -> None:
        listener.accept_queue.append(child)
        listener._changed()

    # ================================================================ output

    def emit(self, sock: TcpSocket, header: bytes, payload: bytes | memoryview) -> None:
        self.counters["segments_out"] += 1
        self.host.tcp_output(sock.wire_local, sock.wire_remote, header, payload)

    def send_reset(self, src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int,
                   with_ack: bool) -> None:
        self.counters["rst_sent"] += 1
        header = wire.build(sport, dport, seq, ack if with_ack else 0,
                            RST | (ACK if with_ack else 0), 0)
        self.host.tcp_output(src, dst, header, b"")

    def challenge_ack_allowed(self, now: float) -> bool:
        return self._challenge.allow(now)

    # ================================================================= input

    def input(self, src: bytes, dst: bytes, segment: memoryview, now: float) -> None:
        """One segment (checksum already verified). Never raises."""
        self.counters["segments_in"] += 1
        try:
            hdr, payload = wire.parse(segment)
        except MalformedPacket:
            self.counters["bad_segments"] += 1
            return
        if hdr.src_port == 0 or hdr.dst_port == 0 or (hdr.flags & SYN and hdr.flags & (RST | FIN)):
            self.counters["bad_segments"] += 1
            return
        sock = self.conns.get((dst, hdr.dst_port, src, hdr.src_port))
        if sock is not None:
            if sock.state is S.TIME_WAIT and hdr.flags & SYN and not hdr.flags & ACK and (
                    unwrap(hdr.seq, sock.rcv_nxt) > sock.rcv_nxt):
                sock._terminate(now)  # RFC 6191-style reuse of a TIME-WAIT 4-tuple
            else:
                sock.segment_arrived(hdr, payload, now)
                self.schedule(sock)
                return
        listener = self._listener_for(dst, hdr.dst_port)
        if listener is not None:
            self._listener_input(listener, src, dst, hdr, payload, now)
            return
        self._reset_for(src, dst, hdr, len(payload), now)

    def _listener_for(self, dst: bytes, port: int) -> TcpSocket | None:
        best: TcpSocket | None = None
        best_score = -1
        v4 = len(dst) == 4
        for sock in self.listeners.get(port, ()):
            assert sock.local is not None
            if not _covers(sock, v4):
                continue
            local = sock.local[0]
            if local == dst:
                score = 2
            elif A.is_wildcard(local):
                score = 1 if (len(local) == len(dst)) else 0
            else:
                continue
            if score > best_score:
                best, best_score = sock, score
        return best

    def _reset_for(self, src: bytes, dst: bytes, hdr: wire.TCPHeader, data_len: int,
                   now: float) -> None:
        """RFC 9293 §3.10.7.1: the answer to a segment for no connection."""
        if hdr.flags & RST:
            return
        self.counters["no_socket"] += 1
        if not self._rst_limit.allow(now):
            return
        if hdr.flags & ACK:
            self.send_reset(dst, hdr.dst_port, src, hdr.src_port, hdr.ack, 0, False)
        else:
            seg_len = data_len + (1 if hdr.flags & SYN else 0) + (1 if hdr.flags & FIN else 0)
            self.send_reset(dst, hdr.dst_port, src, hdr.src_port, 0,
                            (hdr.seq + seg_len) & MASK, True)

    def _listener_input(self, listener: TcpSocket, src: bytes, dst: bytes, hdr: wire.TCPHeader,
                        payload: memoryview, now: float) -> None:
        flags = hdr.flags
        if flags & RST:
            return
        if flags & ACK and not flags & SYN:
            if self.config.syncookies and self._cookie_ack(listener, src, dst, hdr, payload, now):
                return
            self._reset_for(src, dst, hdr, len(payload), now)
            return
        if not flags & SYN or flags & ACK:
            self._reset_for(src, dst, hdr, len(payload), now)
            return
        if len(listener.accept_queue) > listener.backlog:
            self.counters["listen_overflows"] += 1
            return  # like Linux: drop, the client retransmits its SYN
        if listener.half_open >= self.config.max_syn_backlog:
            if self.config.syncookies:
                self._send_cookie(listener, src, dst, hdr, now)
            else:
                self.counters["syn_dropped"] += 1
            return
        child = self._child(listener, src, dst, hdr.dst_port, hdr.src_port)
        child.irs = hdr.seq
        child.rcv_nxt = hdr.seq + 1
        child._init_mss()
        child._negotiate(hdr, now)
        child.ws_ok = hdr.wscale is not None and self.config.window_scaling
        child.iss = self.initial_sequence(child, now)
        child.snd_una = child.snd_nxt = child.snd_max = child.iss
        child.buf_seq = child.iss + 1
        child.snd_wnd = hdr.window  # never scaled in a SYN
        child.snd_wl1 = child.rcv_nxt - 1
        child.max_snd_wnd = child.snd_wnd
        child.parent = listener
        listener.half_open += 1
        child._set_state(S.SYN_RECEIVED, now)
        child.first_unacked_at = now
        child._send_syn(now, ack=True)
        child.rtt_seq = child.iss + 1
        child.rtt_time = now
        child._arm_rto(now)
        self.schedule(child)

    def _child(self, listener: TcpSocket, src: bytes, dst: bytes, local_port: int,
               remote_port: int) -> TcpSocket:
        child = TcpSocket(self, listener.family)
        for name in ("nodelay", "keepalive", "keepidle", "keepintvl", "keepcnt", "user_timeout",
                     "rcvbuf", "sndbuf", "maxseg", "linger", "_congestion_name", "ttl", "tos",
                     "reuseaddr"):
            setattr(child, name, getattr(listener, name))
        child.local = (dst, local_port)
        child.remote = (src, remote_port)
        child.wire_local = dst
        child.wire_remote = src
        self.conns[(dst, local_port, src, remote_port)] = child
        self.ports.setdefault(local_port, []).append(child)
        return child

    def _send_cookie(self, listener: TcpSocket, src: bytes, dst: bytes, hdr: wire.TCPHeader,
                     now: float) -> None:
        mtu = self.host.route_mtu(src) or 576
        mss = min(hdr.mss or 536, mtu - (40 if len(src) == 4 else 60))
        cookie = make_cookie(self.secret, src, hdr.src_port, dst, hdr.dst_port, hdr.seq, mss, now)
        self.counters["syncookies_sent"] += 1
        header = wire.build(hdr.dst_port, hdr.src_port, cookie, (hdr.seq + 1) & MASK,
                            SYN | ACK, min(listener.rcvbuf, 65535), mss=mss)
        self.host.tcp_output(dst, src, header, b"")

    def _cookie_ack(self, listener: TcpSocket, src: bytes, dst: bytes, hdr: wire.TCPHeader,
                    payload: memoryview, now: float) -> bool:
        peer_isn = (hdr.seq - 1) & MASK
        mss = check_cookie(self.secret, src, hdr.src_port, dst, hdr.dst_port, peer_isn,
                           (hdr.ack - 1) & MASK, now)
        if mss is None:
            return False
        if len(listener.accept_queue) > listener.backlog:
            self.counters["listen_overflows"] += 1
            return True
        self.counters["syncookies_ok"] += 1
        child = self._child(listener, src, dst, hdr.dst_port, hdr.src_port)
        child.irs = peer_isn
        child.rcv_nxt = hdr.seq
        child.iss = (hdr.ack - 1) & MASK
        child.snd_una = child.snd_nxt = child.snd_max = hdr.ack
        child.buf_seq = hdr.ack
        child.rcv_mss = mss
        child.peer_mss = mss
        child.mss = mss
        child.rcv_wscale = child.snd_wscale = 0
        child.rcv_adv = child.rcv_nxt + min(child.rcvbuf, 65535)
        child.snd_wnd = hdr.window
        child.snd_wl1, child.snd_wl2 = hdr.seq, hdr.ack
        from multisock.stack.tcp_engine.congestion import make_congestion_control

        child.cc = make_congestion_control(child._congestion_name, mss, now)
        child._set_state(S.SYN_RECEIVED, now)
        child.parent = listener
        listener.half_open += 1
        child._established(now)
        if payload:
            child.segment_arrived(hdr, payload, now)
        self.schedule(child)
        return True

    def icmp_unreachable(self, src: bytes, dst: bytes, quoted: memoryview, err: int, now: float,
                         mtu: int | None = None) -> None:
        if len(quoted) < 8:
            return
        sport = int.from_bytes(quoted[0:2], "big")
        dport = int.from_bytes(quoted[2:4], "big")
        sock = self.conns.get((src, sport, dst, dport))
        if sock is None:
            return
        seq = unwrap(int.from_bytes(quoted[4:8], "big"), sock.snd_una)
        if not sock.snd_una <= seq <= sock.snd_max:
            return  # not about anything in flight (RFC 5927 check)
        self.counters["icmp_errors"] += 1
        if mtu is not None:
            overhead = (40 if len(dst) == 4 else 60) + (12 if sock.ts_ok else 0)
            new_mss = max(64, mtu - overhead)
            if new_mss < sock.mss:
                sock.mss = new_mss
                if sock.cc is not None:
                    sock.cc.set_mss(new_mss)
                sock.snd_nxt = sock.snd_una  # resend what no longer fits
                sock.output(now)
            return
        if sock.state is S.SYN_SENT and err in (errno.ECONNREFUSED, errno.ENOPROTOOPT):
            sock.pending_error = errno.ECONNREFUSED
            sock._terminate(now)
            return
        sock.soft_error = err

    # ================================================================= timers

    def schedule(self, sock: TcpSocket) -> None:
        when = sock.wakeup_at()
        if when < sock.next_wakeup:
            sock.next_wakeup = when
            heapq.heappush(self._heap, (when, next(self._seq), sock))

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and (heap[0][2].next_wakeup != heap[0][0] or heap[0][0] == INF):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def on_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, sock = heapq.heappop(heap)
            if sock.next_wakeup != when:
                continue
            sock.next_wakeup = INF
            sock.on_timer(now)
            self.schedule(sock)

    # ========================================================= introspection

    def log_transition(self, sock: TcpSocket, old: TcpState, new: TcpState, now: float) -> None:
        if self.transition_log is not None:
            self.transition_log.append((now, repr(sock.local), old.name, new.name))
            if len(self.transition_log) > 10000:
                del self.transition_log[:5000]
        if self.on_transition is not None:
            self.on_transition(sock, old, new)

    def connections(self) -> list[dict[str, Any]]:
        """Like ``ss -tni``: every connection and listener with its TCP_INFO figures."""
        out = []
        seen: set[int] = set()
        socks = list(self.conns.values()) + [s for ls in self.listeners.values() for s in ls]
        for sock in socks:
            if id(sock) in seen:
                continue
            seen.add(id(sock))
            out.append(self._row(sock))
        return out

    def _row(self, sock: TcpSocket) -> dict[str, Any]:
        row = sock.info()
        row["local"] = f"{A.unpack(sock.local[0])}:{sock.local[1]}" if sock.local else "*"
        row["remote"] = f"{A.unpack(sock.remote[0])}:{sock.remote[1]}" if sock.remote else "*"
        row["cwnd"] = row["snd_cwnd"]
        return row
