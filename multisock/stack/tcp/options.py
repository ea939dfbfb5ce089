"""TCP options and socket-option plumbing: what the SYNs negotiate (MSS, window scale,
SACK, timestamps; RFC 9293 §3.7.1, RFC 7323), the MSS we offer and use, the timestamp
clock, the options a child inherits from its listener, and options whose setting acts at
once (SO_KEEPALIVE arms or disarms the keepalive timer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from multisock.stack.tcp.block import ControlBlock
from multisock.stack.tcp.config import SYNCHRONIZED
from multisock.stack.tcp.congestion import make_congestion_control
from multisock.stack.tcp.seq import MASK
from multisock.wire.tcp import TCPHeader

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket

_MAX_WSCALE: Final = 14
_WSCALE_FOR: Final[dict[int, int]] = {}  # receive buffer size -> the window scale it needs
_DEFAULT_MSS: Final = {4: 536, 16: 1220}
_IP_OVERHEAD: Final = {4: 40, 16: 60}

#: socket options a child inherits from its listener
OPTION_NAMES = (
    "reuseaddr",
    "reuseport",
    "nodelay",
    "keepidle",
    "keepintvl",
    "keepcnt",
    "user_timeout",
    "linger",
    "oobinline",
    "rcvbuf",
    "sndbuf",
    "quickack",
    "maxseg",
    "v6only",
    "congestion",
)


def window_scale_for(rcvbuf: int) -> int:
    """The window scale we offer for a receive buffer: the smallest that lets the window
    cover it (also what a SYN-cookie SYN-ACK offers, with no control block yet)."""
    shift = _WSCALE_FOR.get(rcvbuf)  # (every connection asks; buffer sizes are few)
    if shift is None:
        shift = 0
        while shift < _MAX_WSCALE and (0xFFFF << shift) < rcvbuf:
            shift += 1
        if len(_WSCALE_FOR) < 256:
            _WSCALE_FOR[rcvbuf] = shift
    return shift


class Options(ControlBlock):
    """Negotiated options, MSS and the socket options that act when set."""

    __slots__ = ()

    @property
    def keepalive(self: TcpSocket) -> bool:  # type: ignore[misc]
        return self._keepalive

    @keepalive.setter
    def keepalive(self: TcpSocket, value: bool) -> None:  # type: ignore[misc]
        self._keepalive = bool(value)
        if self._keepalive and self.state in SYNCHRONIZED:
            self.t_keep = self.last_rcv + self.keepidle
            self._rearm()
        elif not self._keepalive:
            self.t_keep = None

    def _init_mss(self: TcpSocket, mtu: int, gso: int = 0) -> None:  # type: ignore[misc]
        """Our MSS from the route's MTU; ``gso``: the largest packet its interface takes
        for the link to cut (0: none), which bounds a segment of several MSS."""
        overhead = _IP_OVERHEAD[len(self.remote[0]) if self.remote else 4]
        # room for the largest TCP options (40 bytes) whatever the segment carries
        self.gso_cap = gso - overhead - 40 if gso > mtu else 0
        adv = max(mtu - overhead, 88)
        if self.maxseg:
            adv = min(adv, self.maxseg)
        self.adv_mss = min(adv, 0xFFFF)
        self.rcv_mss = min(self.adv_mss, 536)

    def _init_rcv_wscale(self: TcpSocket) -> None:  # type: ignore[misc]
        self.rcv_wscale = window_scale_for(self.rcvbuf)

    def _negotiate(self: TcpSocket, hdr: TCPHeader, now: float) -> None:  # type: ignore[misc]
        """Apply the peer's SYN options; our SYN offered everything the config enables."""
        cfg = self.stack.config
        fam = len(self.remote[0]) if self.remote else 4
        self.peer_mss = hdr.mss if hdr.mss else _DEFAULT_MSS[fam]
        self.ws_ok = cfg.window_scaling and hdr.wscale is not None
        if self.ws_ok:
            assert hdr.wscale is not None
            self.snd_wscale = min(hdr.wscale, _MAX_WSCALE)
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self.sack_ok = cfg.sack and hdr.sack_permitted
        self.ts_ok = cfg.timestamps and hdr.ts_val is not None
        if self.ts_ok:
            assert hdr.ts_val is not None
            self.ts_recent = hdr.ts_val
        self._set_mss()
        if self.cc is None:
            self.cc = make_congestion_control(self.congestion, self.mss, now)
        else:
            self.cc.set_mss(self.mss)

    def _set_mss(self: TcpSocket) -> None:  # type: ignore[misc]
        mss = min(self.peer_mss, self.adv_mss)
        if self.maxseg:
            mss = min(mss, self.maxseg)
        if self.ts_ok:
            mss -= 12
        self.mss = max(mss, 64)

    def _ts_now(self: TcpSocket, now: float) -> int:  # type: ignore[misc]
        return (int(now * 1000) + self.ts_offset) & MASK
