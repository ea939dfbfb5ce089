"""Sequence numbers: kept unwrapped inside the engine, 32-bit only on the wire.

Comparing wrapped 32-bit numbers everywhere is error-prone and slow in Python.
The engine keeps every sequence number as a plain growing int and converts an
incoming 32-bit value to the unwrapped value nearest a reference it knows.
"""

from __future__ import annotations

from typing import Final

# Final: compiled code inlines them (a plain module global is a dict lookup at each use)
MOD: Final = 1 << 32
HALF: Final = 1 << 31
MASK: Final = MOD - 1


def unwrap(value: int, reference: int) -> int:
    """The int congruent to ``value`` (mod 2^32) closest to ``reference``."""
    return reference + ((value - reference + HALF) & MASK) - HALF


def ts_before(a: int, b: int) -> bool:
    """RFC 7323 timestamp comparison: a is older than b (mod 2^32)."""
    return ((a - b) & MASK) > HALF - 1 and a != b
