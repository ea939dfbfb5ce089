"""The security event stream: what the detectors, the IDS and ``log`` rules report.

Events are kept in a bounded ring (the newest ``capacity``; older ones are counted as
``lost``) and handed to every subscribed callback as they happen. A callback runs with
the driver's lock held, inside packet processing: it must be quick and must not block; one
that raises is unsubscribed-proof - the error is counted and the packet goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from multisock.stack import addresses as A


class Event:
    """``time`` (the stack's clock), ``kind`` ("port_scan", "syn_flood", "ids_alert",
    "ids_drop", "firewall_log", "blocked"), ``source`` (an address string) and ``details``."""

    __slots__ = ("time", "kind", "source", "details")

    def __init__(self, time: float, kind: str, source: str, details: dict[str, Any]) -> None:
        self.time = time
        self.kind = kind
        self.source = source
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"time": self.time, "kind": self.kind, "source": self.source,
                "details": self.details}

    def __repr__(self) -> str:
        return f"<Event {self.time:.3f} {self.kind} from {self.source} {self.details}>"


class EventLog:
    def __init__(self, capacity: int = 10000) -> None:
        self.ring: deque[Event] = deque(maxlen=capacity)
        self.callbacks: list[Callable[[Event], Any]] = []
        self.emitted = 0
        self.callback_errors = 0

    def emit(self, now: float, kind: str, source: bytes | str, details: dict[str, Any]) -> Event:
        text = source if isinstance(source, str) else A.unpack(source) if source else ""
        event = Event(now, kind, text, details)
        self.ring.append(event)
        self.emitted += 1
        for callback in self.callbacks:
            try:
                callback(event)
            except Exception:
                self.callback_errors += 1
        return event

    @property
    def lost(self) -> int:
        return self.emitted - len(self.ring)
