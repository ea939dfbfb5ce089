"""Fault schedules on the virtual timeline, drawn from the seed.

The single faults are methods of the network (``net.at(t, callback)``) and of its links
(``link.down(at=t)``, ``up``, ``set(..., at=t)``, ``hold``/``release``). This module adds
FoundationDB's *swizzle*: take a random subset of links out one by one, then bring them
back in a random order - the pattern that finds the bugs a single clean partition does
not. The subset, the order and therefore the whole schedule come from the network seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multisock.net.units import parse_duration

if TYPE_CHECKING:
    from multisock.net.link import Link
    from multisock.net.network import Network


def swizzle(net: Network, *, start: float | str = 0.0, interval: float | str = 1.0,
            links: list[Link] | None = None, mode: str = "down", label: str = "swizzle"
            ) -> list[tuple[float, str, Link]]:
    """Schedule a swizzle; returns the schedule as (time, action, link), in time order.

    ``mode`` ``"down"`` partitions (packets dropped), ``"hold"`` clogs (packets queue and
    flow on release). ``links`` defaults to every link of the network; ``label`` names the
    random stream, so two swizzles of one network differ and each replays by seed."""
    if mode not in ("down", "hold"):
        raise ValueError(f"mode must be 'down' or 'hold', not {mode!r}")
    pool = list(net.links if links is None else links)
    if not pool:
        return []
    rng = net.derive_rng("faults", label)
    chosen = rng.sample(pool, rng.randint(1, len(pool)))
    restore = list(chosen)
    rng.shuffle(restore)
    stop, resume = ("down", "up") if mode == "down" else ("hold", "release")
    when = parse_duration(start)
    step = parse_duration(interval)
    schedule: list[tuple[float, str, Link]] = []
    for action, group in ((stop, chosen), (resume, restore)):
        for link in group:
            schedule.append((when, action, link))
            when += step
    for at, action, link in schedule:
        getattr(link, action)(at=at)
    return schedule
