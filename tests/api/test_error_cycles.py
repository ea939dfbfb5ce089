"""An error from a socket method leaves no reference cycle behind: the caller's frame dies
when it returns, as with a kernel socket, not when the garbage collector next runs.

The facade raises the stack's errors afresh (see ``multisock.socket._raise_without_frames``); a
frame still naming the error it raised is a cycle (frame -> error -> traceback -> frame)
which pins every caller's frame, with their sockets and buffers, until a collection. The
kernel socket raises from C and leaves nothing (the reference here). Checked with the
collector off (``tests/cycles.py``).
"""

from __future__ import annotations

import socket as kernel
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import multisock
from tests.cycles import caller_frame_outlives_call, collector_off


@pytest.fixture
def no_gc() -> Iterator[None]:
    with collector_off():
        yield


@pytest.fixture(params=["multisock", "kernel"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """A connected TCP pair, on a virtual host or the kernel's loopback (the reference);
    ``a`` has shut its sending side (``b`` sends nothing, so ``a`` has nothing to read)."""
    net = multisock.Network(seed=41)
    new = net.add_host("cycles").socket if request.param == "multisock" else kernel.socket
    listener = new()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    a = new()
    a.connect(listener.getsockname())
    b, _ = listener.accept()
    listener.close()
    a.shutdown(kernel.SHUT_WR)
    try:
        yield a, b
    finally:
        a.close()
        b.close()
        net.close()


CALLS: dict[str, Callable[[Any, Any], Any]] = {
    # nothing to read: BlockingIOError (what a TLS socket meets on every read that waits)
    "recv_into would block": lambda a, b: a.recv_into(bytearray(10), 0, kernel.MSG_DONTWAIT),
    "recvfrom_into would block": lambda a, b: a.recvfrom_into(bytearray(10), 0,
                                                               kernel.MSG_DONTWAIT),
    # the sending side is shut: EPIPE
    "send after SHUT_WR": lambda a, b: a.send(b"x"),
    "sendall after SHUT_WR": lambda a, b: a.sendall(b"x"),
    "sendto after SHUT_WR": lambda a, b: a.sendto(b"x", a.getpeername()),
    "sendmsg after SHUT_WR": lambda a, b: a.sendmsg([b"x"]),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_failed_call_leaves_no_cycle_through_the_caller(name: str, pair: tuple[Any, Any],
                                                          no_gc: None) -> None:
    a, b = pair
    assert not caller_frame_outlives_call(lambda: CALLS[name](a, b))


def test_the_check_sees_a_cycle_when_there_is_one(no_gc: None) -> None:
    """The helper is able to fail: a callee that keeps the error it raised is caught."""

    def keeps_its_error() -> None:
        error = OSError("kept")
        raise error  # the frame names the error after raising it: a cycle

    assert caller_frame_outlives_call(keeps_its_error)
