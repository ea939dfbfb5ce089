"""One direction of a link: what happens to each packet, decided deterministically.

Order of decisions per packet (randomness drawn in this fixed order from the
direction's own ``random.Random``, so a seed replays exactly):

1. link down (a partition): dropped.
2. loss: Bernoulli with probability ``loss``, or a Gilbert-Elliott chain for bursts.
3. rate: a serialising transmitter; ``departure = max(now, busy_until) + bits/rate``.
   When ``queue`` packets already wait, the packet is tail-dropped.
4. delay and jitter: ``arrival = departure + delay + uniform(-jitter, +jitter)``, never
   before the previous in-order packet's arrival: jitter alone does not reorder.
5. reorder: with probability ``reorder`` a packet skips the delay and arrives at its
   departure time, overtaking the packets in flight (netem's model). With no delay
   configured there is nothing to overtake, so a reordered packet is instead held back
   by ``REORDER_HOLD`` (1 ms) and the packets after it overtake it.
6. duplicate: a second copy arrives at the same time.
7. corrupt: one bit flipped in a copy (never in the caller's bytes), chosen past the first
   20 bytes when the packet is longer, so that the IP header usually still parses and the
   transport checksum is what catches it — the interesting case for a stack.
"""

from __future__ import annotations

import random
from typing import Any

from multisock.net.units import parse_duration, parse_probability, parse_rate

REORDER_HOLD = 0.001
DEFAULT_QUEUE = 1000


class GilbertElliott:
    """Two-state bursty loss: good->bad with probability p, bad->good with r."""

    __slots__ = ("p", "r", "loss_bad", "loss_good", "bad")

    def __init__(self, p: float, r: float, loss_bad: float = 1.0, loss_good: float = 0.0) -> None:
        for name, value in (("p", p), ("r", r), ("loss_bad", loss_bad), ("loss_good", loss_good)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability, got {value!r}")
        self.p = p
        self.r = r
        self.loss_bad = loss_bad
        self.loss_good = loss_good
        self.bad = False

    def lose(self, rng: random.Random) -> bool:
        if self.bad:
            if rng.random() < self.r:
                self.bad = False
        elif rng.random() < self.p:
            self.bad = True
        return rng.random() < (self.loss_bad if self.bad else self.loss_good)

    @property
    def mean_loss(self) -> float:
        if self.p + self.r == 0:
            return self.loss_good
        share_bad = self.p / (self.p + self.r)
        return share_bad * self.loss_bad + (1 - share_bad) * self.loss_good


class Impairment:
    __slots__ = (
        "rng", "delay", "jitter", "loss", "reorder", "duplicate", "corrupt", "rate", "queue",
        "up", "held", "is_ideal", "counters", "_busy_until", "_departures", "_last_arrival",
    )

    def __init__(self, rng: random.Random, **settings: Any) -> None:
        self.rng = rng
        self.delay = 0.0
        self.jitter = 0.0
        self.loss: float | GilbertElliott = 0.0
        self.reorder = 0.0
        self.duplicate = 0.0
        self.corrupt = 0.0
        self.rate: int | None = None
        self.queue: int | None = None
        self.up = True
        self.held = False  # Direction.hold(): packets wait until release()
        self.is_ideal = True
        self.counters = {
            "offered": 0, "delivered": 0, "lost": 0, "queue_dropped": 0, "down_dropped": 0,
            "duplicated": 0, "corrupted": 0, "reordered": 0, "held": 0,
            # bytes that left the transmitter (counted off the ideal path only: a link's
            # utilisation means something only when it has a rate)
            "sent_bytes": 0,
        }
        self._busy_until = 0.0
        self._departures: list[float] = []
        self._last_arrival = 0.0
        self.set(**settings)

    def set(self, **settings: Any) -> None:
        """Change any of delay, jitter, loss, reorder, duplicate, corrupt, rate, queue, up."""
        for key, value in settings.items():
            if key in ("delay", "jitter"):
                setattr(self, key, parse_duration(value) if value is not None else 0.0)
            elif key == "loss":
                self.loss = value if isinstance(value, GilbertElliott) else (
                    parse_probability(value) if value is not None else 0.0)
            elif key in ("reorder", "duplicate", "corrupt"):
                setattr(self, key, parse_probability(value) if value is not None else 0.0)
            elif key == "rate":
                self.rate = parse_rate(value) if value is not None else None
            elif key == "queue":
                if value is not None and int(value) < 0:
                    raise ValueError("queue must be >= 0 packets")
                self.queue = int(value) if value is not None else None
            elif key == "up":
                self.up = bool(value)
            else:
                raise TypeError(f"unknown impairment {key!r}")
        self.is_ideal = (
            self.up and not self.held and self.delay == 0 and self.jitter == 0 and self.loss == 0
            and self.reorder == 0 and self.duplicate == 0 and self.corrupt == 0
            and self.rate is None
        )

    def backlog(self, now: float) -> int:
        """Packets waiting in the transmitter's queue at ``now`` (the one being sent
        included): what ``tc -s qdisc`` calls the backlog, for the metrics sampler."""
        return sum(1 for departure in self._departures if departure > now)

    def offer(self, packet: bytes, now: float) -> list[tuple[float, bytes]]:
        counters = self.counters
        counters["offered"] += 1
        if not self.up:
            counters["down_dropped"] += 1
            return []
        rng = self.rng
        loss = self.loss
        if isinstance(loss, GilbertElliott):
            lost = loss.lose(rng)
        else:
            lost = loss > 0 and rng.random() < loss
        if lost:
            counters["lost"] += 1
            return []
        departure = now
        if self.rate is not None:
            waiting = self._departures
            while waiting and waiting[0] <= now:
                waiting.pop(0)
            limit = self.queue if self.queue is not None else DEFAULT_QUEUE
            if len(waiting) >= max(1, limit):
                counters["queue_dropped"] += 1
                return []
            departure = max(now, self._busy_until) + len(packet) * 8 / self.rate
            self._busy_until = departure
            waiting.append(departure)
        counters["sent_bytes"] += len(packet)
        reordered = self.reorder > 0 and rng.random() < self.reorder
        if reordered:
            counters["reordered"] += 1
            arrival = departure if self.delay > 0 else departure + REORDER_HOLD
        else:
            arrival = departure + self.delay
            if self.jitter > 0:
                arrival = max(departure, arrival + rng.uniform(-self.jitter, self.jitter))
            arrival = max(arrival, self._last_arrival)
            self._last_arrival = arrival
        copies = [packet]
        if self.duplicate > 0 and rng.random() < self.duplicate:
            counters["duplicated"] += 1
            copies.append(packet)
        if self.corrupt > 0 and rng.random() < self.corrupt:
            counters["corrupted"] += 1
            copies[0] = _flip_bit(packet, rng)
        counters["delivered"] += len(copies)
        return [(arrival, copy) for copy in copies]


def _flip_bit(packet: bytes, rng: random.Random) -> bytes:
    if not packet:
        return packet
    start = 20 if len(packet) > 20 else 0
    index = rng.randrange(start, len(packet))
    mutated = bytearray(packet)
    mutated[index] ^= 1 << rng.randrange(8)
    return bytes(mutated)
