"""Rate limiting of generated ICMP errors (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)).

A token bucket like Linux's ``icmp_msgs_per_sec`` / ``icmp_msgs_burst``: a flood of
packets to a closed port must not turn the host into a flood of ICMP errors.
Echo replies are not limited (Linux's default ``icmp_ratemask`` leaves them out).
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp", "limited")

    def __init__(self, rate: float = 1000.0, burst: float = 50.0) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp: float | None = None
        self.limited = 0

    def allow(self, now: float) -> bool:
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.limited += 1
        return False
