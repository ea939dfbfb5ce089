"""A forked child's stand-ins for its inherited sockets (``api.forking._redirect``) replace
the cores wherever the child's objects hold them, tuples included: a poll object made before
the fork keeps ``(core, mask)`` per socket, and the child's poll must ask the parent about
the socket (a RemoteCore), not the child's frozen copy of the stack. Side by side with the
kernel (``select.poll`` on a kernel socketpair).

Before (the cores native, the stand-ins separate objects, tuples left alone): the child's
poll read its own copy of the socket, which never sees the bytes the parent receives after
the fork, and never reported POLLIN.
"""

from __future__ import annotations

import os
import select as kernel_select
import socket as kernel
import time
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
import multisock.select as mselect
import multisock.socket as msock
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=37)
    h = net.add_host("forker", "10.37.0.1/24")
    with use_host(h):
        yield h
    net.close()


def _multisock_pair() -> tuple[Any, Any]:
    srv = msock.socket(msock.AF_INET, msock.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = msock.create_connection(srv.getsockname(), timeout=30)
    conn, _ = srv.accept()
    srv.close()
    return cli, conn


def _poll_registered_before_fork(pair: tuple[Any, Any], poll_class: Any) -> int:
    """The child's exit code: 0 once its poll (made and registered before the fork) reports
    the bytes the parent sends after it, and the child reads them."""
    sender, receiver = pair
    poller = poll_class()
    poller.register(receiver, kernel_select.POLLIN)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for _ in range(3000):  # up to ~30 s: generous, the bytes are sent at once
                if poller.poll(0):
                    receiver.settimeout(30)
                    code = 0 if receiver.recv(10) == b"ping" else 2
                    break
                time.sleep(0.01)
        finally:
            os._exit(code)
    sender.sendall(b"ping")
    _, status = os.waitpid(pid, 0)
    for sock in pair:
        sock.close()
    return os.waitstatus_to_exitcode(status)


def test_kernel_child_polls_with_a_poll_object_made_before_fork() -> None:
    assert _poll_registered_before_fork(kernel.socketpair(), kernel_select.poll) == 0


def test_child_polls_with_a_poll_object_made_before_fork(host: multisock.Host) -> None:
    assert _poll_registered_before_fork(_multisock_pair(), mselect.poll) == 0
