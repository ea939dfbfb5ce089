"""A real, selectable fd that mirrors a userspace socket's readability (design decision 2).

Created only when ``fileno()`` is first called: an ``eventfd`` that holds a
non-zero count exactly while the socket is readable, so unpatched ``select``,
``poll``, ``epoll`` and asyncio's ``add_reader`` see the truth.
"""

from __future__ import annotations

import os


class ReadinessFd:
    __slots__ = ("fd", "_set")

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._set = False

    def update(self, readable: bool) -> None:
        if readable and not self._set:
            os.eventfd_write(self.fd, 1)
            self._set = True
        elif not readable and self._set:
            try:
                os.eventfd_read(self.fd)
            except BlockingIOError:
                pass
            self._set = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
