"""Which driver a new network gets: the threads backend, or gevent's hub.

``auto`` (the default) picks gevent when gevent has monkey-patched the process —
greenlets then call the sockets, and a thread-blocking wait would freeze every
one of them — and threads otherwise. ``MULTISOCK_BACKEND`` or
``Network(backend=...)`` choose explicitly. gevent is imported only when chosen.
"""

from __future__ import annotations

import os
import sys
import time
from _weakrefset import WeakSet  # weakref's own, loaded by threading: weakref is not
from collections.abc import Callable

from multisock.net.driver import Driver

BACKENDS = ("threads", "gevent")


def gevent_patched() -> bool:
    """gevent's monkey-patching of socket or threading is in effect."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return False
    return bool(monkey.is_module_patched("socket") or monkey.is_module_patched("threading"))


def choose(requested: str | None = None) -> str:
    name = (requested or os.environ.get("MULTISOCK_BACKEND") or "auto").strip().lower()
    if name == "auto":
        return "gevent" if gevent_patched() else "threads"
    if name not in BACKENDS:
        raise ValueError(f"multisock: unknown backend {name!r} (auto, {', '.join(BACKENDS)})")
    return name


class _Registration:
    """A live driver's entry: weakly referable, where the compiled build's native ``Driver``
    is not. The driver holds it (``Driver.registration``) and it holds the driver, so the
    entry lives exactly as long as the driver does."""

    __slots__ = ("driver", "__weakref__")

    def __init__(self, driver: Driver) -> None:
        self.driver = driver


_registrations: WeakSet[_Registration] = WeakSet()


def make_driver(clock: Callable[[], float] = time.monotonic, name: str = "multisock",
                backend: str | None = None) -> Driver:
    driver: Driver
    if backend == "virtual":  # never chosen by auto/MULTISOCK_BACKEND: multisock.sim asks
        from multisock.net.virtual_driver import VirtualDriver

        driver = VirtualDriver(name=name)
    elif choose(backend) == "gevent":
        from multisock.net.gevent_driver import GeventDriver

        driver = GeventDriver(clock, name=name)
    else:
        driver = Driver(clock, name=name)
    registration = driver.registration = _Registration(driver)
    _registrations.add(registration)
    return driver


def live_drivers() -> list[Driver]:
    """Drivers of networks not yet closed (nor garbage): gevent patching checks them."""
    return [r.driver for r in list(_registrations) if not r.driver.closed]
