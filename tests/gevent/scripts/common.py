"""Shared by the gevent test scripts (each runs in its own process: patching is forever).

``setup()`` patches in the documented order (gevent, then multisock) with gevent's
blocking monitor on; :class:`Ticker` measures the longest the hub went without
running a greenlet that asks to wake every 5 ms; :func:`leaked_greenlets` lists
greenlets still alive after shutdown; :func:`report` prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import warnings
from typing import Any

import gevent
import gevent.monkey

warnings.filterwarnings("ignore", message="Unable to monitor memory usage")

gevent.config.monitor_thread = True  # before the hub exists
gevent.config.max_blocking_time = float(os.environ.get("GEVENT_MAX_BLOCKING", "0.25"))


def setup(order: str = "gevent-first") -> None:
    import multisock.monkey

    if order == "gevent-first":
        gevent.monkey.patch_all()
        multisock.monkey.patch_all()
    else:
        multisock.monkey.patch_all()
        gevent.monkey.patch_all()
    _watch_blocking()


BLOCKED: list[float] = []


def _watch_blocking() -> None:
    import zope.event

    def on_event(event: Any) -> None:
        if type(event).__name__ == "EventLoopBlocked":
            BLOCKED.append(float(event.blocking_time))

    zope.event.subscribers.append(on_event)
    gevent.get_hub().start_periodic_monitoring_thread()


class Ticker:
    """A greenlet that sleeps 5 ms at a time and records the longest gap between wakes."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.max_gap = 0.0
        self.ticks = 0
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            gevent.sleep(self.period)
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last - self.period)
            self.ticks += 1
            last = now

    def stop(self) -> None:
        self._greenlet.kill()


class SliceMeter:
    """The longest time the thread ran without a greenlet switch (any greenlet, the hub's own
    callbacks included): exactly how long the hub could not serve anyone. Chains to the
    tracer already installed (gevent's blocking monitor uses one)."""

    def __init__(self) -> None:
        import greenlet

        self.longest = 0.0
        self._last = time.perf_counter()
        self._previous = greenlet.settrace(self._trace)

    def _trace(self, event: str, args: Any) -> None:
        now = time.perf_counter()
        if now - self._last > self.longest:
            self.longest = now - self._last
        self._last = now
        if self._previous is not None:
            self._previous(event, args)

    def stop(self) -> None:
        import greenlet

        greenlet.settrace(self._previous)


class DriverCallbackMeter:
    """The longest single run of multisock's own hub callback (the stack's due timers)."""

    def __init__(self) -> None:
        from multisock.net.gevent_driver import GeventDriver

        self.longest = 0.0
        self.calls = 0
        original = GeventDriver._fire
        meter = self

        def timed(driver: Any) -> None:
            start = time.perf_counter()
            try:
                original(driver)
            finally:
                meter.calls += 1
                meter.longest = max(meter.longest, time.perf_counter() - start)

        GeventDriver._fire = timed  # type: ignore[method-assign]


def leaked_greenlets() -> list[str]:
    """Greenlets other than the main one and the hub that are still alive."""
    import greenlet

    gevent.sleep(0.05)
    gc.collect()
    hub = gevent.get_hub()
    main = greenlet.getcurrent()
    alive = []
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj is not hub and obj is not main \
                and obj.parent is not None and not obj.dead:  # parent None: a thread's main
            alive.append(repr(obj))
    return alive


def network_kind() -> str:
    import socket

    from multisock.runtime import default_host

    return f"{socket.socket.__module__}/{default_host().driver.backend}"


def report(**numbers: Any) -> None:
    numbers["hub_blocked_reports"] = len(BLOCKED)
    numbers["hub_blocked_max"] = round(max(BLOCKED), 4) if BLOCKED else 0.0
    print("RESULT " + json.dumps(numbers), flush=True)
    sys.stdout.flush()
