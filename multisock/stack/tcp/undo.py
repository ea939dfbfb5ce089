"""Undoing a congestion response that was not needed (spurious retransmissions).

A recovery episode (fast recovery or a timeout) remembers the window it found
(``start``). It turns out spurious when every byte it retransmitted is reported as a
duplicate by D-SACK (RFC 2883 detection, RFC 3708's reasoning: the originals arrived,
so nothing was lost), or - with timestamps - when the ACK covering the first
retransmission echoes a timestamp older than that retransmission (the Eifel detection,
RFC 3522: it answers the original). The response, in the spirit of Eifel (RFC 4015)
and Linux's tcp_undo_cwnd_reduction: cwnd and ssthresh go back to their values before
the episode. D-SACKs count only inside the episode's range [marker, high), so a
duplicate later in the stream does not undo it; one the network itself duplicated
inside the range can (Linux has the same blind spot).
"""

from __future__ import annotations

from multisock.stack.tcp.seq import ts_before


class Undo:
    __slots__ = (
        "active", "marker", "high", "cwnd", "ssthresh", "retrans", "any_rtx",
        "rtx_ts", "rtx_seq", "eifel_done", "events",
    )

    def __init__(self) -> None:
        self.active = False
        self.marker = 0  # snd_una when the episode began
        self.high = 0  # snd_max then
        self.cwnd = 0
        self.ssthresh = 0
        self.retrans = 0  # bytes retransmitted in the episode not yet reported duplicate
        self.any_rtx = False
        self.rtx_ts: int | None = None  # TSval of the episode's first retransmission
        self.rtx_seq = 0
        self.eifel_done = False
        self.events = 0

    def start(self, cwnd: int, ssthresh: int, snd_una: int, snd_max: int) -> None:
        self.active = True
        self.marker = snd_una
        self.high = snd_max
        self.cwnd = cwnd
        self.ssthresh = ssthresh
        self.retrans = 0
        self.any_rtx = False
        self.rtx_ts = None
        self.eifel_done = False

    def on_retransmit(self, seq: int, n: int, ts: int | None) -> None:
        if not self.active or seq >= self.high:
            return
        self.retrans += n
        if not self.any_rtx:
            self.any_rtx = True
            self.rtx_ts = ts
            self.rtx_seq = seq

    def on_dsack(self, start: int, end: int) -> bool:
        """A D-SACK for [start, end): True when every retransmission is now accounted
        for as a duplicate."""
        if not self.active or not self.any_rtx:
            return False
        if start < self.marker or end > self.high:
            return False
        n = end - start
        self.retrans = self.retrans - n if self.retrans > n else 0
        return self.retrans == 0

    def eifel(self, ack: int, ts_ecr: int) -> bool:
        """The first ACK covering the first retransmission: True if it echoes an older
        timestamp (the original's). Asked once per episode."""
        if not self.active or self.eifel_done or self.rtx_ts is None or ack <= self.rtx_seq:
            return False
        self.eifel_done = True
        return ts_before(ts_ecr, self.rtx_ts)
