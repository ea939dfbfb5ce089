"""Selector classes for the patched ``selectors`` module (read and write readiness exact).

Each stdlib selector keeps its own name and behaviour: ``SelectSelector`` waits with
:func:`multisock.select.wait` (``select()`` semantics, FD_SETSIZE included), ``PollSelector``
and ``EpollSelector`` use multisock's ``poll``/``epoll`` (kernel poll/epoll for real fds, so they
scale past FD_SETSIZE and keep the kernel's errors). ``DefaultSelector`` is the epoll one,
as on Linux.
"""

from __future__ import annotations

import selectors
import sys
from typing import Any

from multisock import select as mselect


def _stdlib(name: str) -> Any:
    """The stdlib's selector class, even when gevent removed it (``EpollSelector``) first."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("selectors"):
        return gevent_monkey.get_original("selectors", name)
    return getattr(selectors, name)


class MultisockSelectSelector(_stdlib("SelectSelector")):  # type: ignore[misc]
    """``SelectSelector`` whose wait understands multisock sockets mixed with real fds."""

    def _select(self, r: Any, w: Any, _: Any, timeout: float | None = None) -> Any:
        ready_r, ready_w = mselect.wait(r, w, timeout)
        return ready_r, ready_w, []


class MultisockPollSelector(_stdlib("PollSelector")):  # type: ignore[misc]
    """``PollSelector`` over :class:`multisock.select.poll`."""

    _selector_cls = mselect.poll


class MultisockEpollSelector(_stdlib("EpollSelector")):  # type: ignore[misc]
    """``EpollSelector`` over :class:`multisock.select.epoll`."""

    _selector_cls = mselect.epoll


# the stdlib's names: programs and tests branch on ``type(selector).__name__``
for _cls, _name in ((MultisockSelectSelector, "SelectSelector"),
                    (MultisockPollSelector, "PollSelector"),
                    (MultisockEpollSelector, "EpollSelector")):
    _cls.__name__ = _cls.__qualname__ = _name

MultisockSelector = MultisockEpollSelector

CLASSES = {
    "SelectSelector": MultisockSelectSelector,
    "PollSelector": MultisockPollSelector,
    "EpollSelector": MultisockEpollSelector,
    "DefaultSelector": MultisockEpollSelector,
}
