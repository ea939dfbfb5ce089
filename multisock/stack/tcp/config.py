"""TCP tunables and the state enumeration."""

from __future__ import annotations

import enum
from typing import Any, Final


class TcpState(enum.Enum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"

    # members are singletons compared by identity: hash them by identity too, in C
    # (Enum's own __hash__ is Python code, run for every state-set test on the hot path)
    __hash__ = object.__hash__


SYNCHRONIZED: Final = frozenset(  # (Final: a C static when compiled, not a dict lookup)
    {
        TcpState.ESTABLISHED,
        TcpState.FIN_WAIT_1,
        TcpState.FIN_WAIT_2,
        TcpState.CLOSE_WAIT,
        TcpState.CLOSING,
        TcpState.LAST_ACK,
        TcpState.TIME_WAIT,
    }
)
CAN_SEND: Final = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT})
CAN_RECEIVE: Final = frozenset({TcpState.ESTABLISHED, TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2})


class TcpConfig:
    """Defaults follow Linux where Linux has a number; all in seconds and bytes.

    Class attributes hold the defaults; keyword arguments override them. A plain class
    rather than a dataclass: ``dataclasses`` imports ``inspect`` and ``ast`` (~1 MiB RSS).
    """

    rto_min: float = 0.2  # TCP_RTO_MIN
    rto_max: float = 120.0  # TCP_RTO_MAX
    rto_initial: float = 1.0  # RFC 6298
    msl: float = 30.0  # TIME-WAIT lasts 2*MSL (Linux: 60 s)
    delayed_ack: float = 0.04  # Linux's minimum ATO
    syn_retries: int = 6  # tcp_syn_retries (~127 s)
    synack_retries: int = 5
    retries2: int = 15  # tcp_retries2 (~15 min of backoff)
    fin_timeout: float = 60.0  # tcp_fin_timeout for orphaned FIN-WAIT-2
    # tcp_orphan_retries: zero-window probes for a closed socket (0: 8, while backing off)
    orphan_retries: int = 0
    rcvbuf: int = 4 * 1024 * 1024
    sndbuf: int = 4 * 1024 * 1024
    ooo_limit: int = 4 * 1024 * 1024  # bytes held out of order, per connection
    somaxconn: int = 4096  # net.core.somaxconn caps listen()'s backlog
    max_syn_backlog: int = 256  # half-open connections per listener before SYN cookies
    syncookies: bool = True
    timestamps: bool = True
    sack: bool = True
    window_scaling: bool = True
    congestion: str = "cubic"
    quickack_segments: int = 16  # ACK every segment at connection start (Linux quickack mode)
    # net.ipv4.tcp_invalid_ratelimit: per connection, at most one ACK per this many seconds
    # answers a segment that did not advance it (out of window, PAWS, ACK of unsent data) and
    # at most one challenge ACK; what ends ACK storms and hides which 4-tuples exist
    invalid_ratelimit: float = 0.5
    # net.ipv4.tcp_challenge_ack_limit, a host-wide budget per second (RFC 5961 §7): off by
    # default as in Linux 6.x (INT_MAX); a smaller value is randomised each second as Linux
    # does since CVE-2016-5696 (a fixed budget lets an off-path attacker count it down)
    challenge_ack_limit: int = 0x7FFFFFFF
    keepalive_time: float = 7200.0
    keepalive_intvl: float = 75.0
    keepalive_probes: int = 9
    ephemeral_low: int = 32768
    ephemeral_high: int = 60999
    # net.ipv4.tcp_tw_reuse: connect() may take over a TIME-WAIT 4-tuple (timewait.py,
    # TimeWait.reusable): 0 never, 1 always, 2 for loopback traffic only
    tw_reuse: int = 2
    log_transitions: bool = False

    def __init__(self, **overrides: Any) -> None:
        for name, value in overrides.items():
            if name not in _FIELDS:
                raise TypeError(f"TcpConfig() got an unexpected keyword argument {name!r}")
            setattr(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TcpConfig):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in _FIELDS)
        return f"TcpConfig({inner})"


# the fields in definition order: an interpreted class has them as its annotations; compiled by
# mypyc (a native class, whose class attributes become instance defaults) it keeps no
# annotations and lists its attributes in __mypyc_attrs__ instead (with __hash__ among them)
_FIELDS: tuple[str, ...] = tuple(
    name for name in getattr(TcpConfig, "__mypyc_attrs__", None)
    or vars(TcpConfig)["__annotations__"] if not name.startswith("__")
)
