"""The wake-up pipe behind multisock's poll/epoll must never lose a wake-up.

A notification that lands while the pipe is being drained (another thread: the driver's
timers deliver segments without the event loop's thread) must leave the pipe able to wake
the next wait. The interleaving is forced here by making the drain's read call the notifier,
which is what the GIL release inside ``os.read`` allows in real runs.
"""

from __future__ import annotations

import os
import select as kernel_select
from typing import Any

import pytest

from multisock import select as mselect


def _pipe_readable(fd: int) -> bool:
    return bool(kernel_select.select([fd], [], [], 0)[0])


def test_a_notification_during_drain_does_not_silence_later_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    waker = mselect._Waker()
    try:
        waker()  # a change: one byte in the pipe
        assert _pipe_readable(waker.r)
        real_read = os.read
        calls = {"n": 0}

        def read_with_a_concurrent_notification(fd: int, n: int) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                waker()  # the driver thread notifies while the loop thread drains
            return real_read(fd, n)

        monkeypatch.setattr(mselect.os, "read", read_with_a_concurrent_notification)
        waker.drain()
        monkeypatch.setattr(mselect.os, "read", real_read)

        waker()  # a later change must wake the next wait
        assert _pipe_readable(waker.r), "wake-up lost: pending stayed set on an empty pipe"
    finally:
        waker.close()


def test_epoll_wakes_for_data_delivered_by_another_thread() -> None:
    """End to end: a sleeping epoll wait on a userspace socket returns when another thread
    sends to it, repeatedly (each round drains the pipe once)."""
    import threading

    from multisock.socket import socket

    listener = socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket()
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    ep = mselect.epoll()
    try:
        ep.register(server.fileno(), mselect.EPOLLIN)
        for i in range(50):
            sender = threading.Timer(0.001, client.sendall, (b"x",))
            sender.start()
            events = ep.poll(30)
            sender.join()
            assert events == [(server.fileno(), mselect.EPOLLIN)], (i, events)
            assert server.recv(10) == b"x"
    finally:
        ep.close()
        for s in (client, server, listener):
            s.close()
