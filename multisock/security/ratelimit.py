"""Per-source token buckets: the firewall's ``limit="100/s", burst=N`` match (hashlimit-like).

Each source address has its own bucket of ``burst`` tokens refilled at ``rate`` per second
of the stack's virtual time. The table is bounded: when it is full, buckets that have
refilled completely (indistinguishable from a fresh one) are forgotten among the oldest few,
and failing that the oldest bucket is; so a flood from spoofed sources costs bounded memory
and bounded work per packet.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(over\s+)?(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")
MAX_SOURCES = 16384
_EXAMINE = 8


def parse_rate(text: str) -> tuple[float, bool]:
    """``"100/s"`` -> (100.0, False); ``"over 10/minute"`` -> (0.1666..., True)."""
    match = _RATE.match(text.lower())
    if match is None or match.group(3) not in _UNITS:
        raise ValueError(f"not a rate like 100/s, 20/minute or 'over 5/s': {text!r}")
    rate = float(match.group(2)) / _UNITS[match.group(3)]
    if rate <= 0:
        raise ValueError(f"a rate must be positive: {text!r}")
    return rate, match.group(1) is not None


class SourceLimit:
    """Buckets keyed by source address. ``conform(src, now)``: True while under the rate."""

    __slots__ = ("rate", "burst", "buckets", "max_sources", "evicted")

    def __init__(self, rate: float, burst: int, max_sources: int = MAX_SOURCES) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.buckets: dict[bytes, list[float]] = {}  # src -> [tokens, stamp]
        self.max_sources = max_sources
        self.evicted = 0

    def conform(self, src: bytes, now: float) -> bool:
        bucket = self.buckets.get(src)
        if bucket is None:
            if len(self.buckets) >= self.max_sources:
                self._evict(now)
            self.buckets[src] = [self.burst - 1.0, now]
            return True
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False

    def _evict(self, now: float) -> None:
        buckets = self.buckets
        oldest = None
        for n, (src, (tokens, stamp)) in enumerate(buckets.items()):
            if oldest is None:
                oldest = src
            if tokens + (now - stamp) * self.rate >= self.burst:
                del buckets[src]
                self.evicted += 1
                return
            if n >= _EXAMINE:
                break
        if oldest is not None:
            del buckets[oldest]
            self.evicted += 1
