"""The TCP control block's state - every field of one connection (or listener) - and the
few helpers every part uses: state transitions, the block's timer-heap entry, teardown.

``TcpSocket`` (``connection.py``) is this state plus the parts that hold the rules, one
module each, so that a reader finds a rule in one obvious file:

* ``options.Options`` - TCP options the SYNs negotiate (MSS, window scale, SACK,
  timestamps) and socket options that act when set (keepalive);
* ``output.Output`` - transmission and persist: the window field, one segment built, the
  output loop under the peer's window, cwnd, Nagle and SWS avoidance, window updates;
* ``recovery.Recovery`` - what an ACK tells the sender: new data acknowledged (RTT sample,
  congestion window, recovery exit), SACK scoreboard, duplicate ACKs, fast retransmit;
* ``timeouts.Timeouts`` - what each deadline's expiry does: retransmission, persist probes,
  keepalive, delayed ACK, TIME-WAIT/FIN-WAIT-2, TCP_USER_TIMEOUT;
* ``arrival.Arrival`` - a segment arriving, in RFC 9293 §3.10.7's order (SYN-SENT; then
  sequence check with PAWS, RST, SYN, ACK, data, FIN), with RFC 5961's RST/SYN/ACK rules;
* ``connection.TcpSocket`` - the user API (bind ... close, readiness).

**One line of single inheritance**, in that order (``Options(ControlBlock)``,
``Output(Options)``, ... ``TcpSocket(Arrival)``): each part calls only itself and the parts
below it (and ``TcpSocket``'s user API calls them all), which is also the order of the
modules' imports (``tests/test_layers.py``). Each part's methods take ``self: TcpSocket``,
with the ``type: ignore[misc]`` that mypy asks for a self type narrower than the class it
is written in: they hand the block to the stack's tables, the timer heap and TIME-WAIT
records, typed for the whole socket (and it is always one: only ``TcpSocket`` is
instantiated). Mixins combined by multiple inheritance (``@trait``s, for mypyc) were tried
first: mypy takes each ``self.x = ...`` in a mixin for a new attribute of the mixin,
conflicting with this class's (43 errors for the first two parts), and its remedy, a
Protocol, would repeat every field here. A chain is also mypyc's native form (one base per
class: no trait vtables) for the compiled build of ``stack/``. Cost at run time: none
measured - attribute and method lookups are served by CPython's per-type cache whatever
the MRO's length (docs/performance.md, "connection.py split: cost"). The slots are all
here; every part has ``__slots__ = ()``.

Sequence numbers are unwrapped ints inside (see ``seq.py``); only the wire sees 32 bits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from multisock.stack.tcp.buffers import OutOfOrder, ReceiveQueue, SendBuffer
from multisock.stack.tcp.config import TcpState
from multisock.stack.tcp.congestion import Reno
from multisock.stack.tcp.prr import Prr
from multisock.stack.tcp.rack import Rack
from multisock.stack.tcp.rtt import RttEstimator
from multisock.stack.tcp.sack import Scoreboard
from multisock.stack.tcp.undo import Undo

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket
    from multisock.stack.tcp.stack import TcpStack

# the states as module constants (an Enum member read through its class is an attribute
# lookup); Final, here and below: compiled code keeps them in C statics or inlines them,
# where a plain module global is a dictionary lookup at each use
S = TcpState
CLOSED: Final = S.CLOSED
LISTEN: Final = S.LISTEN
SYN_SENT: Final = S.SYN_SENT
SYN_RECEIVED: Final = S.SYN_RECEIVED
ESTABLISHED: Final = S.ESTABLISHED
FIN_WAIT_1: Final = S.FIN_WAIT_1
FIN_WAIT_2: Final = S.FIN_WAIT_2
CLOSE_WAIT: Final = S.CLOSE_WAIT
CLOSING: Final = S.CLOSING
LAST_ACK: Final = S.LAST_ACK
TIME_WAIT: Final = S.TIME_WAIT

#: states in which data or a FIN of ours may still be (re)sent
# the peer's urgent byte (Linux's tp->urg_data): none; announced, not yet arrived; arrived
# and unread; read with MSG_OOB (still skipped by a plain read until the reader passes it)
URG_NONE: Final = 0
URG_NOTYET: Final = 1
URG_VALID: Final = 2
URG_READ: Final = 3

_SENDING: Final = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK})
#: states in which the peer's data is still accepted
_RECEIVING: Final = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})

_NO_QUEUE: tuple[()] = ()


class ControlBlock:
    """The state of one block. ``TcpSocket`` is the class instantiated (by
    ``TcpStack.socket``, CLOSED; it lives on after ``close``)."""

    __slots__ = (
        # a TIME-WAIT record points back weakly (timewait.py)
        "__weakref__",
        # identity and user-visible state
        "ttl",
        "tos",
        "stack",
        "family",
        "state",
        "local",
        "remote",
        "on_change",
        "armed_at",
        "error",
        "soft_error",
        "closed",
        "shut_rd",
        "shut_wr",
        "was_connected",
        "nospace",
        "_dirty",
        "bound",
        # options
        "reuseaddr",
        "reuseport",
        "nodelay",
        "_keepalive",
        "keepidle",
        "keepintvl",
        "keepcnt",
        "user_timeout",
        "linger",
        "oobinline",
        # urgent data (RFC 9293 §3.8.5, BSD/Linux pointer semantics): the sequence just past
        # our last urgent byte (0: not in urgent mode); the peer's urgent byte's sequence,
        # its state (URG_NONE...) and value
        "snd_up",
        "urg_seq",
        "urg_state",
        "urg_byte",
        "rcvbuf",
        "sndbuf",
        "quickack",
        "maxseg",
        "v6only",
        "congestion",
        # listener
        "backlog",
        "accept_queue",
        "syn_count",
        "parent",
        # send side
        "sndq",
        "iss",
        "snd_una",
        "snd_nxt",
        "snd_max",
        "snd_wnd",
        "snd_wl1",
        "snd_wl2",
        "max_sndwnd",
        "snd_wscale",
        "fin_seq",
        "mss",
        "gso_cap",
        "peer_mss",
        "cc",
        "rtt",
        "rtt_seq",
        "rtt_time",
        "last_send",
        "karn_until",
        "karn_ts",
        # recovery
        "in_recovery",
        "recover",
        "dupacks",
        "rxt_next",
        "lost_end",
        "ndup",
        "board",
        # RACK-TLP, PRR and undo (rack.py, prr.py, undo.py): None until SACK is in use
        "rack",
        "prr",
        "undo",
        # receive side
        "recvq",
        "ooo",
        "irs",
        "rcv_nxt",
        "rcv_adv",
        "rcv_wscale",
        "adv_mss",
        "rcv_mss",
        "rcv_acked",
        "fin_received",
        "ooo_fin",
        "ooo_last",
        "quick_left",
        "ack_now",
        "dsack",
        "last_oow_ack",
        # options negotiated
        "ts_ok",
        "ts_recent",
        "ts_offset",
        "sack_ok",
        "ws_ok",
        # timers
        "t_rexmit",
        "persist",
        "t_dack",
        "t_keep",
        "t_misc",
        "retries",
        "rexmit_start",
        "probes",
        "last_rcv",
        # statistics
        "bytes_sent",
        "bytes_acked",
        "bytes_received",
        "bytes_retrans",
        "segs_out",
        "segs_in",
        "data_segs_out",
        "data_segs_in",
        "total_retrans",
        "created",
        "ooo_dropped",
    )

    def __init__(self, stack: TcpStack, family: int) -> None:
        cfg = stack.config
        self.stack = stack
        self.family = family
        self.state = CLOSED
        self.local: tuple[bytes, int] | None = None
        self.remote: tuple[bytes, int] | None = None
        self.on_change: Callable[[], None] | None = None
        self.armed_at: float | None = None
        self.error = 0
        self.soft_error = 0
        self.closed = False
        self.shut_rd = False
        self.shut_wr = False
        self.was_connected = False
        # Linux's SOCK_NOSPACE: someone found the send buffer not writable (poll, select, a
        # blocked or short send) and must be told when an ACK makes it writable again
        self.nospace = False
        self._dirty = False
        self.bound = False
        self.reuseaddr = False
        self.reuseport = False
        self.nodelay = False
        self._keepalive = False
        self.keepidle = cfg.keepalive_time
        self.keepintvl = cfg.keepalive_intvl
        self.keepcnt = cfg.keepalive_probes
        self.user_timeout = 0
        self.linger: float | None = None
        self.oobinline = False  # SO_OOBINLINE: the urgent byte stays in the stream
        self.snd_up = 0
        self.urg_seq = 0
        self.urg_state = URG_NONE
        self.urg_byte = 0
        self.ttl: int | None = None  # IP_TTL / IPV6_UNICAST_HOPS (None: the host's default)
        self.tos = 0  # IP_TOS
        self.rcvbuf = cfg.rcvbuf
        self.sndbuf = cfg.sndbuf
        self.quickack = False
        self.maxseg = 0
        self.v6only = False
        self.congestion = cfg.congestion
        self.backlog = 0
        # only a listener needs a queue (a deque is ~0.7 KiB): listen() creates it, and the
        # shared empty tuple answers len()/bool()/iteration for every other socket
        self.accept_queue: deque[TcpSocket] = _NO_QUEUE  # type: ignore[assignment]
        self.syn_count = 0
        self.parent: TcpSocket | None = None
        self.sndq = SendBuffer()
        self.iss = 0
        self.snd_una = self.snd_nxt = self.snd_max = 0
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_sndwnd = 0
        self.snd_wscale = 0
        self.fin_seq: int | None = None
        self.mss = 536
        # the most payload one segment may carry when the route's interface takes segments
        # larger than the MSS for its link to cut (segmentation offload); 0: no offload
        self.gso_cap = 0
        self.peer_mss = 536
        self.cc: Reno | None = None  # (Reno or a subclass: see make_congestion_control)
        self.rtt = RttEstimator(cfg.rto_initial, cfg.rto_min, cfg.rto_max)
        self.rtt_seq: int | None = None
        self.rtt_time = 0.0
        self.last_send = 0.0
        self.karn_until: int | None = None  # timestamps older than karn_ts are not samples
        self.karn_ts = 0
        self.in_recovery = False
        self.recover = 0
        self.dupacks = 0
        self.rxt_next = 0
        self.lost_end = 0
        self.ndup = 0
        self.board = Scoreboard()
        self.rack: Rack | None = None
        self.prr: Prr | None = None
        self.undo: Undo | None = None
        self.recvq = ReceiveQueue()
        self.ooo = OutOfOrder(cfg.ooo_limit)
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0
        self.rcv_wscale = 0
        self.adv_mss = 536
        self.rcv_mss = 536
        self.rcv_acked = 0
        self.fin_received = False
        self.ooo_fin: int | None = None
        self.ooo_last: int | None = None  # start of the latest out-of-order arrival
        self.quick_left = cfg.quickack_segments
        self.ack_now = False
        self.dsack: tuple[int, int] | None = None
        self.last_oow_ack = float("-inf")  # when the last rate-limited ACK went (oow_ack_allowed)
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_offset = 0
        self.sack_ok = False
        self.ws_ok = False
        self.t_rexmit: float | None = None
        self.persist = False
        self.t_dack: float | None = None
        self.t_keep: float | None = None
        self.t_misc: float | None = None
        self.retries = 0
        self.rexmit_start: float | None = None
        self.probes = 0
        self.last_rcv = 0.0
        self.bytes_sent = self.bytes_acked = self.bytes_received = self.bytes_retrans = 0
        self.segs_out = self.segs_in = self.data_segs_out = self.data_segs_in = 0
        self.total_retrans = 0
        self.created = 0.0
        self.ooo_dropped = 0

    def __repr__(self) -> str:
        return f"<TcpSocket {self.state.name} {self.local} -> {self.remote}>"

    @property
    def local_port(self: TcpSocket) -> int:  # type: ignore[misc]
        return self.local[1] if self.local is not None else 0

    def _set_state(self: TcpSocket, new: TcpState, now: float) -> None:  # type: ignore[misc]
        old = self.state
        if old is new:
            return
        self.state = new
        stack = self.stack
        if stack.config.log_transitions:
            stack.transition(self, old, new, now)
        stack.touch(self)

    def _stream_writeable(self) -> bool:
        """Linux's rule for POLLOUT on a TCP socket (``__sk_stream_is_writeable``): the free
        space (sndbuf minus what is queued, sent or not) is at least half of what is queued,
        i.e. at most 2/3 of the buffer holds data. ``send`` accepts bytes whenever any space
        is free (``sk_stream_memory_free``); poll, select and the wakeups of blocked writers
        wait for this, so a writer is woken once per third of a buffer, not per ACK.
        (TCP_NOTSENT_LOWAT, the rule's other half, is not supported: its default is no
        limit.)"""
        queued = self.sndq.size
        free = self.sndbuf - queued
        return free > 0 and free >= queued >> 1

    def set_sndbuf(self: TcpSocket, size: int) -> None:  # type: ignore[misc]
        """SO_SNDBUF: a larger buffer can make a full socket writable at once, so the
        writers asleep on it are told, as Linux's sock_setsockopt calls sk_write_space."""
        self.sndbuf = size
        self._write_space()

    def _write_space(self: TcpSocket) -> None:  # type: ignore[misc]
        """An ACK freed send-buffer space (Linux's tcp_check_space -> sk_stream_write_space):
        readiness changes only if someone found the socket full and it is writable now."""
        if self.nospace and self._stream_writeable():
            self.nospace = False
            self.stack.touch(self)

    def _rearm(self: TcpSocket) -> None:  # type: ignore[misc]
        when = self.t_rexmit
        t = self.t_dack
        if t is not None and (when is None or t < when):
            when = t
        t = self.t_keep
        if t is not None and (when is None or t < when):
            when = t
        t = self.t_misc
        if t is not None and (when is None or t < when):
            when = t
        if when is not None:
            armed = self.armed_at
            if armed is None or when < armed:  # (TimerHeap.arm's own first test)
                self.stack.timers.arm(self, when)

    def _arm_rexmit(self: TcpSocket, now: float) -> None:  # type: ignore[misc]
        self.persist = False
        self.t_rexmit = now + self.rtt.current()
        self._rearm()

    def _finish(self: TcpSocket, now: float, err: int) -> None:  # type: ignore[misc]
        """Enter CLOSED for good: report ``err`` (if any), leave every table."""
        if err:
            self.error = err
        if self.state is SYN_RECEIVED and self.parent is not None:
            self.parent.syn_count -= 1  # a half-open child leaves the SYN queue
        self.t_rexmit = self.t_dack = self.t_keep = self.t_misc = None
        # no timer left: disarm, so the heap's entry is stale and compaction can drop it
        # (otherwise the entry keeps this dead block alive until its deadline, for the GC
        # to traverse again and again; see docs/performance.md, connection rate)
        self.armed_at = None
        self.persist = False
        self.sndq.clear()
        self.ooo.clear()
        self.board.clear()
        self._set_state(CLOSED, now)
        self.stack.unregister(self)
        self.stack.touch(self)
