"""Comparing two runs of one seed: their traces (pcaps) must be byte-identical.

A trace is the pcap of every packet entering a link or a loopback, each stamped with its
virtual time (``VirtualDriver.wall``), so equal bytes mean the same packets at the same
instants. When they differ, the report names the first packet that does, which is where
the real world got in.
"""

from __future__ import annotations

import struct

_GLOBAL = 24
_RECORD = struct.Struct("<IIII")


def records(pcap: bytes) -> list[tuple[float, bytes]]:
    """(timestamp, packet) for each record of a classic pcap written by ``PcapWriter``."""
    out: list[tuple[float, bytes]] = []
    offset = _GLOBAL
    while offset + _RECORD.size <= len(pcap):
        sec, usec, incl, _orig = _RECORD.unpack_from(pcap, offset)
        offset += _RECORD.size
        out.append((sec + usec / 1e6, pcap[offset:offset + incl]))
        offset += incl
    return out


def first_difference(first: bytes, second: bytes) -> str | None:
    """None when the traces are identical, else what differs first, in words."""
    if first == second:
        return None
    a, b = records(first), records(second)
    for index, (one, two) in enumerate(zip(a, b, strict=False)):
        if one != two:
            (t1, p1), (t2, p2) = one, two
            what = "timestamps" if p1 == p2 else "bytes"
            return (f"packet #{index} differs ({what}): first run t={t1:.6f} {len(p1)} bytes "
                    f"{p1[:40].hex()}..., second run t={t2:.6f} {len(p2)} bytes "
                    f"{p2[:40].hex()}...")
    if len(a) != len(b):
        return (f"the runs sent {len(a)} and {len(b)} packets; the first {min(len(a), len(b))} "
                "are identical")
    return "the pcap headers differ"
