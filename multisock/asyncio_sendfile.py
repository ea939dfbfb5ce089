"""asyncio's "native" sendfile for userspace sockets.

The selector event loop's native path hands ``sock.fileno()`` to ``os.sendfile()``; for a
userspace socket that fd is a readiness eventfd, so the call fails and asyncio silently falls
back to writing through the transport, which changes what a program sees (``transport.write``
during ``loop.sendfile`` is accepted instead of raising "sendfile is in progress", as CPython's
test_asyncio.test_sendfile checks). The hook keeps the native path: the file's bytes are read
at the offset from its fd and sent with non-blocking ``send`` calls, waiting for write
readiness through the loop (the patched selectors know a userspace socket's). The file
position ends after what was sent, as asyncio's native path leaves it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

CHUNK = 256 * 1024


def make_sock_sendfile_native(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _sock_sendfile_native(self: Any, sock: Any, file: Any, offset: int,
                                    count: int | None) -> int:
        if not getattr(sock, "_is_userspace", False):
            return int(await original(self, sock, file, offset, count))
        return await sendfile_userspace(self, sock, file, offset, count)

    _sock_sendfile_native.multisock_hook = True  # type: ignore[attr-defined]
    return _sock_sendfile_native


async def _writable(loop: Any, sock: Any) -> None:
    fut = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        loop.remove_writer(fd)


async def sendfile_userspace(loop: Any, sock: Any, file: Any, offset: int,
                             count: int | None) -> int:
    from asyncio import exceptions

    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise exceptions.SendfileNotAvailableError("not a regular file") from None
    try:
        size = os.fstat(fileno).st_size
    except OSError:
        raise exceptions.SendfileNotAvailableError("not a regular file") from None
    todo = count if count else size
    sent = 0
    try:
        while sent < todo:
            chunk = os.pread(fileno, min(todo - sent, CHUNK), offset + sent)
            if not chunk:
                break
            view = memoryview(chunk)
            while view:
                try:
                    n = sock.send(view)
                except (BlockingIOError, InterruptedError):
                    await _writable(loop, sock)
                    continue
                sent += n
                view = view[n:]
        return sent
    finally:
        if sent:
            os.lseek(fileno, offset + sent, os.SEEK_SET)
