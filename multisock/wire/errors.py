"""The one exception that every wire parser raises.

Parsers sit on the untrusted edge of the stack: whatever bytes arrive, the only
exception they may let out is :class:`MalformedPacket`, so that the input path can
count and drop a bad packet with a single ``except`` and never crash the driver.
"""

from __future__ import annotations


class MalformedPacket(ValueError):
    """A packet (or header) that cannot be parsed.

    ``layer`` names the codec that refused it (``"ipv4"``, ``"tcp"``...) and
    ``reason`` is a short, stable, human-readable explanation used as a counter key.
    """

    def __init__(self, layer: str, reason: str) -> None:
        super().__init__(f"{layer}: {reason}")
        self.layer = layer
        self.reason = reason
