"""Proportional Rate Reduction (RFC 6937): how much may be sent on each ACK of a recovery.

The window falls from its value at the loss to ssthresh *while* the ACKs of the
flight come back, in proportion to what they deliver (``prr_delivered``), instead of
all at once (RFC 6675: silence for half an RTT, then a burst) or not at all. Once the
pipe is below ssthresh, PRR-SSRB (slow-start reduction bound) lets it grow back by at
most what was delivered plus one segment per ACK. The engine sets cwnd to
``pipe + sndcnt`` on each ACK (as Linux's tcp_cwnd_reduction does) and counts every
byte sent during recovery into ``out``.
"""

from __future__ import annotations


class Prr:
    __slots__ = ("recover_fs", "delivered", "out")

    def __init__(self) -> None:
        self.recover_fs = 1
        self.delivered = 0  # prr_delivered: bytes the receiver got since recovery began
        self.out = 0  # prr_out: bytes sent since recovery began

    def start(self, flight: int) -> None:
        """Recovery begins; ``flight`` is RecoverFS (snd.nxt - snd.una, RFC 6937 §3)."""
        self.recover_fs = flight if flight > 0 else 1
        self.delivered = 0
        self.out = 0

    def sndcnt(self, delivered: int, pipe: int, ssthresh: int, mss: int) -> int:
        """Bytes that may be sent on this ACK, which delivered ``delivered`` bytes."""
        self.delivered += delivered
        if pipe > ssthresh:
            # proportional part: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out
            cnt = -(-self.delivered * ssthresh // self.recover_fs) - self.out
        else:
            # PRR-SSRB: catch up towards ssthresh, by at most what arrived plus one MSS
            limit = self.delivered - self.out
            if delivered > limit:
                limit = delivered
            cnt = ssthresh - pipe
            if cnt > limit + mss:
                cnt = limit + mss
        if cnt < 0:
            cnt = 0
        if not self.out and cnt < mss:
            cnt = mss  # the fast retransmit goes whatever the arithmetic says (as Linux)
        return cnt
