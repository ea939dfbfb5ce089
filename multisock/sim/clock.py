"""Time and randomness as the program sees them inside a simulation.

While a simulation runs, on the thread that owns it:

* ``time.monotonic``, ``time.perf_counter`` (and their ``_ns`` forms) read the virtual clock
  (0 when the network was made, so ``loop.time() == time.monotonic() == net.now()``);
  ``time.time``/``time_ns`` read it from a fixed epoch (``net.virtual_driver.EPOCH``);
  ``time.sleep`` runs the network forward instead of sleeping.
* ``random``'s global generator is seeded from the network seed; ``os.urandom`` (and so
  ``secrets``, ``random.SystemRandom``, ``uuid.uuid4``) returns bytes from a generator
  seeded the same way.

References taken earlier with ``from time import monotonic`` (``threading``, ``queue``, the
program's own modules) are found in every loaded module's globals and rebound for the run,
then restored: a program that captured the real clock still reads the virtual one.

Every replacement first checks the calling thread: any other thread (another network's
driver, pytest's machinery) keeps the real functions, so nothing outside the simulation
sees virtual time. What is *not* covered is written in docs/simulation.md (C code reading
the clock itself, e.g. ``datetime.now()``; OpenSSL's own randomness).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from multisock.net.virtual_driver import EPOCH, VirtualDriver

# the functions replaced, by name, in ``time`` and ``os``
TIME_NAMES = ("monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns",
              "sleep")


def _virtual_functions(driver: VirtualDriver, owner: int, urandom: Callable[[int], bytes]
                       ) -> dict[tuple[str, str], Callable[..., Any]]:
    """The replacements, keyed by (module, name); each falls back to the real function on
    any thread but ``owner``."""
    real = {name: getattr(time, name) for name in TIME_NAMES}
    real_urandom = os.urandom
    get_ident = threading.get_ident

    def monotonic() -> float:
        return driver.time if get_ident() == owner else real["monotonic"]()

    def monotonic_ns() -> int:
        return int(driver.time * 1e9) if get_ident() == owner else real["monotonic_ns"]()

    def perf_counter() -> float:
        return driver.time if get_ident() == owner else real["perf_counter"]()

    def perf_counter_ns() -> int:
        return int(driver.time * 1e9) if get_ident() == owner else real["perf_counter_ns"]()

    def time_() -> float:
        return EPOCH + driver.time if get_ident() == owner else real["time"]()

    def time_ns() -> int:
        return int((EPOCH + driver.time) * 1e9) if get_ident() == owner else real["time_ns"]()

    def sleep(seconds: float) -> None:
        if get_ident() != owner:
            real["sleep"](seconds)
            return
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        driver.sleep(seconds)

    def urandom_(size: int) -> bytes:
        return urandom(size) if get_ident() == owner else real_urandom(size)

    made: dict[str, Callable[..., Any]] = {"monotonic": monotonic, "monotonic_ns": monotonic_ns, "perf_counter": perf_counter,
            "perf_counter_ns": perf_counter_ns, "time": time_, "time_ns": time_ns,
            "sleep": sleep}
    out: dict[tuple[str, str], Callable[..., Any]] = {("time", n): f for n, f in made.items()}
    out[("os", "urandom")] = urandom_
    return out


def _rebind_captures(swaps: dict[int, Callable[..., Any]]) -> list[tuple[dict[str, Any], str, Any]]:
    """Point every module global that *is* a real function at its replacement; returns what
    to restore. (Modules of multisock's own lower layers read the clock only through the
    driver, so they are left alone.)"""
    undo: list[tuple[dict[str, Any], str, Any]] = []
    for name, module in list(sys.modules.items()):
        if module is None or name in ("time", "os") or name.startswith("multisock.net"):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            if callable(value) and id(value) in swaps:
                replacement = swaps[id(value)]
                if namespace.get(attr) is value:
                    namespace[attr] = replacement
                    undo.append((namespace, attr, value))
    return undo


@contextmanager
def program_time(driver: VirtualDriver, seed: int, *, owner: int | None = None) -> Iterator[None]:
    """Install virtual time and seeded randomness for the thread ``owner`` (the caller's)."""
    owner = threading.get_ident() if owner is None else owner
    bytes_rng = random.Random(f"{seed}/program/urandom")
    replacements = _virtual_functions(driver, owner, bytes_rng.randbytes)
    modules = {"time": time, "os": os}
    saved = {key: getattr(modules[key[0]], key[1]) for key in replacements}
    swaps = {id(saved[key]): fn for key, fn in replacements.items()}
    random_state = random.getstate()
    for (module, attr), fn in replacements.items():
        setattr(modules[module], attr, fn)
    undo = _rebind_captures(swaps)
    random.seed(f"{seed}/program/random")
    try:
        yield
    finally:
        random.setstate(random_state)
        for namespace, attr, value in undo:
            if namespace.get(attr) is swaps[id(value)]:  # (unless the program rebound it)
                namespace[attr] = value
        for (module, attr), value in saved.items():
            setattr(modules[module], attr, value)
