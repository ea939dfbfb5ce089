"""Building the exact exceptions CPython's socket module raises."""

from __future__ import annotations

import errno
import os


def oserror(code: int) -> OSError:
    """``OSError(code, strerror)``; Python maps it to the right subclass (ConnectionRefusedError...)."""
    return OSError(code, os.strerror(code))


def would_block() -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")


def timed_out() -> TimeoutError:
    # CPython raises socket.timeout (== TimeoutError since 3.10) with this exact text
    return TimeoutError("timed out")


def bad_fd() -> OSError:
    return OSError(errno.EBADF, "Bad file descriptor")
