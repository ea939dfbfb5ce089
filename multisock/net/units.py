"""Unit strings as the CLI and the Network API accept them: ``10ms``, ``10mbit``, ``1%``.

A time or a rate given as a *string* must carry its unit: ``"20"`` could be 20 s, 20 ms
(ping) or 20 us (tc), and a test that meant milliseconds would silently wait seconds. A
Python number keeps its documented meaning (seconds, bits per second): ``delay=0.005``.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Zµ%]*)\s*$")
_DURATION = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "µs": 1e-6,
             "usec": 1e-6, "ns": 1e-9}
_RATE = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12,
         "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9}
TIME_UNITS = "ns, us, ms or s, e.g. 20ms"
RATE_UNITS = ("bit, kbit, mbit, gbit or tbit per second, or bps, kbps, mbps, gbps in bytes per "
              "second, e.g. 10mbit")
_SIZE = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
         "mib": 1024**2, "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


def _split(text: str, what: str, hint: str) -> tuple[float, str]:
    match = _NUMBER.match(text)
    if not match:
        raise ValueError(f"not a {what}: {text!r} (use {hint})")
    return float(match.group(1)), match.group(2)


def parse_duration(value: str | float | int) -> float:
    """Seconds from ``"5ms"``, ``"2s"``, ``"100us"`` or a number of seconds.

    A string without a unit (``"20"``) is refused: the unit is not guessable.
    """
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        number, unit = _split(value, "duration", TIME_UNITS)
        if not unit:
            raise ValueError(f"a time needs a unit: {value!r} (use {TIME_UNITS})")
        if unit.lower() not in _DURATION and unit not in _DURATION:
            raise ValueError(f"unknown time unit {unit!r} in {value!r} (use {TIME_UNITS})")
        seconds = number * _DURATION.get(unit, _DURATION.get(unit.lower(), 1.0))
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"duration must be >= 0: {value!r}")
    return seconds


def parse_rate(value: str | float | int) -> int:
    """Bits per second from ``"10mbit"``, ``"1gbit"``, ``"100kbps"`` (bytes) or a number.

    A string without a unit (``"10"``) is refused, as for times.
    """
    if isinstance(value, (int, float)):
        rate = float(value)
    else:
        number, unit = _split(value, "rate", RATE_UNITS)
        key = unit.lower()
        if not unit:
            raise ValueError(f"a rate needs a unit: {value!r} (use {RATE_UNITS})")
        if key not in _RATE:
            raise ValueError(f"unknown rate unit {unit!r} in {value!r} (use {RATE_UNITS})")
        rate = number * _RATE[key]
    if rate <= 0:
        raise ValueError(f"rate must be > 0: {value!r}")
    return int(rate)


def parse_probability(value: str | float | int) -> float:
    """A probability from ``"1%"``, ``"0.01"`` or 0.01."""
    if isinstance(value, (int, float)):
        p = float(value)
    else:
        number, unit = _split(value, "probability", "1% or 0.01")
        if unit not in ("", "%"):
            raise ValueError(f"not a probability: {value!r} (use 1% or 0.01)")
        p = number / 100 if unit == "%" else number
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be within 0..1 (0%..100%): {value!r}")
    return p


def parse_size(value: str | float | int) -> int:
    """Bytes (or a count) from ``"64k"``, ``"1m"`` or a number."""
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        number, unit = _split(value, "size", "64k, 1m or a number of bytes")
        key = unit.lower()
        if key not in _SIZE:
            raise ValueError(f"unknown size unit {unit!r} in {value!r}")
        size = number * _SIZE[key]
    if size < 0:
        raise ValueError(f"size must be >= 0: {value!r}")
    return int(size)
