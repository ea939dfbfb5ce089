"""When things happen in a scenario: the two places that touch time.

Every timed action of a scenario (an event ``at = "5s"``, a traffic start, the metrics
sampler) is scheduled through :func:`schedule`, and the run waits through :func:`wait_until`.
Today they use the driver's timers and real time; when virtual time lands (``net.at``,
``multisock.sim.run``), these two functions are what changes, and scenarios run faster
without any other edit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multisock.net.network import Network


def schedule(net: Network, when: float, callback: Callable[[], None]) -> None:
    """Run ``callback`` on the driver (its lock held) at ``when`` on the network's clock."""
    net.driver.call_at(when, callback)
    net.driver.start()  # the driver thread sleeps until the earliest timer


def wait_until(net: Network, when: float, stop: threading.Event | None = None) -> None:
    """Block the caller until the network's clock reaches ``when`` (or ``stop`` is set)."""
    stop = stop or threading.Event()
    while True:
        remaining = when - net.driver.now()
        if remaining <= 0 or stop.is_set():
            return
        stop.wait(min(remaining, 0.05))
