"""Round-trip time estimation and the retransmission timeout (RFC 6298).

Kept apart from the connection so that the arithmetic (and its corner cases: the
first sample, the minimum, the backoff ceiling) can be tested on its own.
"""

from __future__ import annotations

from typing import Final

CLOCK_GRANULARITY: Final = 0.001  # G: timestamps tick in milliseconds
#: the RTO after a handshake that gave no RTT sample, relative to the initial one (RFC 6298
#: §5.7's 3 s against its 1 s; Linux's TCP_TIMEOUT_FALLBACK against TCP_TIMEOUT_INIT)
FALLBACK_FACTOR: Final = 3.0


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "rto", "rto_min", "rto_max", "backoff", "latest", "min_rtt")

    def __init__(self, rto_initial: float, rto_min: float, rto_max: float) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = rto_initial
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.backoff = 0  # number of doublings since the last valid sample
        self.latest = 0.0
        self.min_rtt: float | None = None

    def sample(self, rtt: float) -> None:
        """Feed one measurement (Karn: never from a retransmitted segment)."""
        if rtt < 0.0:
            rtt = 0.0
        self.latest = rtt
        if self.min_rtt is None or rtt < self.min_rtt:
            self.min_rtt = rtt
        srtt = self.srtt
        if srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            err = srtt - rtt
            if err > 0.0:
                # a falling RTT (Linux's tcp_rtt_estimator, after Eifel): RFC 6298's gain
                # would let the variance chase the shrinking error upwards, so one large
                # early sample (a handshake after a loss) lifted the RTO from 3 s to 3.5 s
                # on a 1 ms path; growth is damped to alpha*beta (1/32) instead
                grow = err - self.rttvar
                self.rttvar += grow * 0.03125 if grow > 0.0 else grow * 0.25
            else:
                self.rttvar += (-err - self.rttvar) * 0.25
            self.srtt = srtt - err * 0.125
        assert self.srtt is not None
        spread = 4 * self.rttvar
        rto = self.srtt + (spread if spread > CLOCK_GRANULARITY else CLOCK_GRANULARITY)
        # (comparisons rather than min/max: this runs once per acknowledgement)
        if rto < self.rto_min:
            rto = self.rto_min
        if rto > self.rto_max:
            rto = self.rto_max
        self.rto = rto
        self.backoff = 0

    def handshake_done(self) -> None:
        """The connection is established: without a round-trip sample from the handshake
        (its SYN or SYN-ACK was repeated, Karn; a SYN cookie; a stale echo), the timeout
        becomes three times the initial one (3 s) until the first sample - RFC 6298 §5.7.
        Linux does it for the same condition (``tcp_init_metrics``: srtt 0 at
        ``tcp_init_transfer`` -> TCP_TIMEOUT_FALLBACK), whether or not the SYN timed out,
        and so do we: a 1 s RTO on a path that just needed more than 1 s for a handshake
        would resend the first data spuriously."""
        if self.srtt is None:
            rto = self.rto * FALLBACK_FACTOR
            self.rto = rto if rto < self.rto_max else self.rto_max

    def current(self) -> float:
        """The timeout to arm now: the base RTO doubled once per unanswered expiry."""
        rto = self.rto * (1 << self.backoff) if self.backoff else self.rto
        return rto if rto < self.rto_max else self.rto_max  # (no min(): asked per segment)

    def back_off(self) -> None:
        if self.rto * (1 << self.backoff) < self.rto_max:
            self.backoff += 1
