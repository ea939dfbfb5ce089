"""Connection tracking, netfilter's model: every packet is NEW, ESTABLISHED, RELATED or INVALID.

One table per host (or router) of :class:`Conn` entries, each reachable by two keys - its
original tuple ``(proto, src, dst, sport, dport)`` and the reversed reply tuple - so a
packet's lookup is one dict access whichever way it travels. ICMP echo uses the identifier
as both ports; an ICMP error is RELATED when the packet it quotes belongs to a tracked
connection; other protocols are tracked by addresses alone.

TCP is followed through a simplified version of Linux's state table (no sequence-window
tracking: ``tcp_in_window`` is not modelled) with Linux's timeouts per state; a non-SYN
segment of an unknown connection is picked up mid-stream when it carries ACK
(``nf_conntrack_tcp_loose=1``, Linux's default), otherwise INVALID, as are impossible flag
combinations.

Time is the stack's virtual clock, handed in as ``now``; nothing here reads a clock. Expiry
is lazy (an entry past its deadline is gone when next looked up) plus a bounded sweep of
the oldest entries on every insertion, so memory follows the live connections without a
timer. The table is bounded (``max_entries``, Linux's ``nf_conntrack_max``): when it is
full a new connection first evicts an expired entry or, failing that, the oldest entry that
never saw a reply (Linux's early drop) among the few examined; if there is none, the packet
is dropped and counted in ``counters["table_full"]``, as Linux drops it ("table full,
dropping packet").
"""

from __future__ import annotations

from collections import deque
from typing import Any

from multisock.security.flow import ACK, FIN, ICMP, ICMPV6, RST, SYN, TCP, UDP, Flow

# ctinfo, as the firewall's ``state`` match sees it (bit values, so a rule holds a mask)
NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED = 1, 2, 4, 8, 16
STATE_NAMES = {"new": NEW, "established": ESTABLISHED, "related": RELATED, "invalid": INVALID,
               "untracked": UNTRACKED}

# TCP states of a tracked connection (Linux's names)
(SYN_SENT, SYN_RECV, ESTABLISHED_TCP, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT,
 CLOSE) = range(8)
TCP_STATE_NAMES = ("SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
                   "LAST_ACK", "TIME_WAIT", "CLOSE")
# Linux's nf_conntrack_tcp_timeout_* defaults, seconds, indexed by the state above
TCP_TIMEOUTS = (120.0, 60.0, 432000.0, 120.0, 60.0, 30.0, 120.0, 10.0)
TCP_ESTABLISHED_TIMEOUT = TCP_TIMEOUTS[ESTABLISHED_TCP]
UDP_TIMEOUT, UDP_STREAM_TIMEOUT = 30.0, 120.0
ICMP_TIMEOUT, GENERIC_TIMEOUT = 30.0, 600.0
DEFAULT_MAX = 65536
_EXAMINE = 8  # entries looked at per insertion (the sweep) and per eviction attempt

_FLAG_BITS = SYN | ACK | FIN | RST
# Linux's tcp_valid_flags: the combinations a real stack sends (PSH/URG/ECE/CWR aside)
_VALID_FLAGS = frozenset((SYN, SYN | ACK, RST, RST | ACK, FIN | ACK, ACK))
_ECHO_REQUESTS = (8, 128)


class Conn:
    """One tracked connection."""

    __slots__ = ("orig", "reply", "proto", "tcp", "expires", "replied", "assured", "fins",
                 "created", "packets", "octets", "dead", "stream", "blocked")

    def __init__(self, orig: tuple[Any, ...], reply: tuple[Any, ...], proto: int,
                 now: float) -> None:
        self.orig = orig
        self.reply = reply
        self.proto = proto
        self.tcp = SYN_SENT  # TCP state (meaningless for other protocols)
        self.expires = now
        self.replied = False  # a packet went the reply way (netfilter's SEEN_REPLY)
        self.assured = False  # saw traffic both ways past the handshake (not early-dropped)
        self.fins = 0  # 1: the original side sent FIN, 2: the reply side did
        self.created = now
        self.packets = [0, 0]  # per direction: original, reply
        self.octets = [0, 0]
        self.dead = False
        self.stream: Any = None  # the IDS's per-direction stream state, when it watches
        self.blocked = False  # an IPS drop rule matched: every later packet is dropped

    def state_name(self) -> str:
        if self.proto == TCP:
            return TCP_STATE_NAMES[self.tcp]
        return "REPLIED" if self.replied else "UNREPLIED"

    def __repr__(self) -> str:
        return f"<Conn {self.orig} {self.state_name()}>"


class ConnTrack:
    """The table. ``track(flow, now)`` answers (ctinfo, conn, direction); direction is 0
    for the original way, 1 for the reply, -1 when the table was full (drop the packet)."""

    def __init__(self, max_entries: int = DEFAULT_MAX, *, loose: bool = True) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self.loose = loose
        self.table: dict[tuple[Any, ...], Conn] = {}
        self._order: deque[Conn] = deque()  # creation order, for the sweep and early drop
        self.count = 0
        self.counters = {"new": 0, "established": 0, "related": 0, "invalid": 0,
                         "table_full": 0, "early_drop": 0, "expired": 0}

    # ------------------------------------------------------------------ lookup

    def track(self, flow: Flow, now: float) -> tuple[int, Conn | None, int]:
        """Classify ``flow`` and update its connection; direction 0 original, 1 reply."""
        proto = flow.proto
        if flow.fragment:
            return UNTRACKED, None, 0
        if flow.inner is not None:
            return self._related(flow.inner, now)
        key = (proto, flow.src, flow.dst, flow.sport, flow.dport)
        conn = self.table.get(key)
        if conn is not None and conn.expires < now:
            self._remove(conn)
            self.counters["expired"] += 1
            conn = None
        if conn is None:
            return self._new(flow, key, now)
        direction = 0 if key == conn.orig else 1
        conn.packets[direction] += 1
        conn.octets[direction] += flow.size
        if proto == TCP:
            if conn.tcp == ESTABLISHED_TCP and not flow.flags & 0x07 and flow.flags & ACK:
                # the bulk of every connection: an ACK-only-flags segment while established
                conn.expires = now + TCP_ESTABLISHED_TIMEOUT
                return ESTABLISHED, conn, direction
            info = self._tcp(conn, flow.flags, direction, now)
        else:
            if direction:
                if not conn.replied:
                    conn.replied = True
                    self.counters["established"] += 1
                else:
                    conn.assured = True
            timeout = UDP_STREAM_TIMEOUT if proto == UDP and conn.assured else \
                UDP_TIMEOUT if proto == UDP else ICMP_TIMEOUT if proto in (ICMP, ICMPV6) \
                else GENERIC_TIMEOUT
            conn.expires = now + timeout
            info = ESTABLISHED if conn.replied else NEW
        if info == INVALID:
            self.counters["invalid"] += 1
        return info, conn, direction

    def _related(self, inner: Flow, now: float) -> tuple[int, Conn | None, int]:
        # the quoted packet went from the error's destination: either key finds its conn
        conn = self.table.get((inner.proto, inner.src, inner.dst, inner.sport, inner.dport))
        if conn is None or conn.expires < now:
            self.counters["invalid"] += 1
            return INVALID, None, 0
        self.counters["related"] += 1
        return RELATED, conn, 0

    def _new(self, flow: Flow, key: tuple[Any, ...], now: float) -> tuple[int, Conn | None, int]:
        proto = flow.proto
        if proto == TCP:
            flags = flow.flags & _FLAG_BITS
            if flags == SYN:
                state = SYN_SENT
            elif self.loose and flags in (ACK, FIN | ACK):
                state = ESTABLISHED_TCP  # picked up mid-stream
            else:
                self.counters["invalid"] += 1
                return INVALID, None, 0
        elif proto in (ICMP, ICMPV6):
            if flow.itype not in _ECHO_REQUESTS:
                # an echo reply, or an informational message, with no request behind it
                self.counters["invalid"] += 1
                return INVALID, None, 0
            state = 0
        else:
            state = 0
        if self.count >= self.max_entries and not self._make_room(now):
            self.counters["table_full"] += 1
            return INVALID, None, -1  # direction -1: no room (the caller drops it)
        reply = (proto, flow.dst, flow.src, flow.dport, flow.sport)
        conn = Conn(key, reply, proto, now)
        conn.tcp = state
        conn.packets[0] = 1
        conn.octets[0] = flow.size
        if proto == TCP:
            conn.expires = now + TCP_TIMEOUTS[state]
            if state == ESTABLISHED_TCP:
                conn.replied = conn.assured = True
        elif proto == UDP:
            conn.expires = now + UDP_TIMEOUT
        elif proto in (ICMP, ICMPV6):
            conn.expires = now + ICMP_TIMEOUT
        else:
            conn.expires = now + GENERIC_TIMEOUT
        self.table[key] = conn
        self.table[reply] = conn
        self.count += 1
        self._order.append(conn)
        self.counters["new"] += 1
        self._sweep(now)
        return NEW, conn, 0

    # --------------------------------------------------------------------- TCP

    def _tcp(self, conn: Conn, flags: int, direction: int, now: float) -> int:
        """Move ``conn`` on by one segment's flags; the packet's ctinfo."""
        flags &= _FLAG_BITS
        if flags not in _VALID_FLAGS:
            return INVALID
        state = conn.tcp
        if flags & RST:
            conn.tcp = CLOSE
        elif flags == SYN:
            if direction == 0 and state in (TIME_WAIT, CLOSE):
                # the same 4-tuple opens again (port reuse): a new connection
                conn.tcp = SYN_SENT
                conn.replied = conn.assured = False
                conn.fins = 0
                conn.expires = now + TCP_TIMEOUTS[SYN_SENT]
                return NEW
            if state != SYN_SENT or direction != 0:
                return INVALID
        elif flags == SYN | ACK:
            if direction != 1 or state not in (SYN_SENT, SYN_RECV):
                if state == ESTABLISHED_TCP:
                    return ESTABLISHED  # a retransmitted SYN-ACK
                return INVALID
            conn.tcp = SYN_RECV
            if not conn.replied:
                conn.replied = True
                self.counters["established"] += 1
        elif flags & FIN:
            bit = 1 << direction
            conn.fins |= bit
            if conn.fins == 3:
                conn.tcp = LAST_ACK
            elif state in (SYN_RECV, ESTABLISHED_TCP, SYN_SENT):
                conn.tcp = FIN_WAIT if direction == 0 else CLOSE_WAIT
        else:  # a plain ACK
            if state == SYN_RECV and direction == 0:
                conn.tcp = ESTABLISHED_TCP
                conn.assured = True
            elif state == SYN_SENT:
                return INVALID  # an ACK before the SYN-ACK
            elif state == LAST_ACK:
                conn.tcp = TIME_WAIT
        conn.expires = now + TCP_TIMEOUTS[conn.tcp]
        if not conn.replied:
            if direction == 1:
                conn.replied = True
                self.counters["established"] += 1
            else:
                return NEW
        return ESTABLISHED

    # ------------------------------------------------------------- bookkeeping

    def _remove(self, conn: Conn) -> None:
        if conn.dead:
            return
        conn.dead = True
        self.table.pop(conn.orig, None)
        self.table.pop(conn.reply, None)
        self.count -= 1

    def _sweep(self, now: float) -> None:
        """Look at the oldest few entries: drop the expired, rotate the live to the back."""
        order = self._order
        for _ in range(min(_EXAMINE // 4, len(order))):
            conn = order.popleft()
            if conn.dead:
                continue
            if conn.expires < now:
                self._remove(conn)
                self.counters["expired"] += 1
            else:
                order.append(conn)

    def _make_room(self, now: float) -> bool:
        """Early drop: an expired entry, else an unreplied one, among the oldest few."""
        order = self._order
        candidate: Conn | None = None
        for _ in range(min(_EXAMINE, len(order))):
            conn = order.popleft()
            if conn.dead:
                continue
            order.append(conn)
            if conn.expires < now:
                self._remove(conn)
                self.counters["expired"] += 1
                return True
            if candidate is None and not conn.assured:
                candidate = conn
        if candidate is None:
            return False
        self._remove(candidate)
        self.counters["early_drop"] += 1
        return True

    def lookup(self, proto: int, src: bytes, dst: bytes, sport: int, dport: int) -> Conn | None:
        conn = self.table.get((proto, src, dst, sport, dport))
        return conn if conn is not None and not conn.dead else None

    def entries(self, now: float) -> list[dict[str, Any]]:
        """The live connections, like ``conntrack -L``."""
        from multisock.stack import addresses as A

        rows = []
        for conn in self._order:
            if conn.dead or conn.expires < now:
                continue
            proto, src, dst, sport, dport = conn.orig
            rows.append({"proto": proto, "src": A.unpack(src), "dst": A.unpack(dst),
                         "sport": sport, "dport": dport, "state": conn.state_name(),
                         "expires_in": conn.expires - now, "assured": conn.assured,
                         "packets": tuple(conn.packets), "bytes": tuple(conn.octets)})
        return rows

    def clear(self) -> None:
        self.table.clear()
        self._order.clear()
        self.count = 0
