"""Whether a call leaves a reference cycle through its caller's frame (tests of errors).

A frame that still names an exception it raised forms a cycle (frame -> exception ->
traceback -> frame) that keeps every calling frame, with its locals (sockets, connection
pools, buffers), alive until the garbage collector runs. These helpers find such cycles with
the collector off, by a weak reference to an object only the caller's frame holds.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Marker:
    """Something only the calling frame refers to."""


@contextmanager
def collector_off() -> Iterator[None]:
    """Only reference counting frees anything inside (the collector's state is restored)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def caller_frame_outlives_call(call: Callable[[], Any],
                               error: type[BaseException] = OSError) -> bool:
    """Run ``call`` (it must raise ``error``) from a frame holding a marker; swallow the
    error, return, and say whether that frame is still alive (a cycle holds it). Meaningful
    with the collector off."""

    def caller() -> weakref.ref[Marker]:
        marker = Marker()
        try:
            call()
        except error:
            pass
        else:
            raise AssertionError("the call did not fail")
        return weakref.ref(marker)

    return caller()() is not None
