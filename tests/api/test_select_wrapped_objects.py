"""select/poll/epoll/selectors given an object that wraps a socket, side by side with the
kernel's (issue 15 item 12).

The kernel only asks such an object for ``fileno()``. multisock used to look up ``_sock`` and
``_userspace`` on it, which ``mock.Mock(wraps=sock)`` (or any ``__getattr__`` proxy) answers
with a made-up object: poll then reported POLLNVAL for a healthy socket. A userspace socket is
recognised by its type or by the fd number its ``fileno()`` gives.
"""

from __future__ import annotations

import select as kernel_select
import selectors
import socket as kernel
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

import multisock
import multisock.socket as msock
from multisock import select as mselect
from multisock import selectors_shim
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=112)
    h = net.add_host("wrapped", "10.112.0.1/24")
    with use_host(h):
        yield h
    net.close()


class Proxy:
    """A wrapper that forwards every attribute (as logging or instrumentation wrappers do)."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


WRAPPERS: dict[str, Callable[[Any], Any]] = {
    "mock": lambda s: mock.Mock(wraps=s),
    "proxy": Proxy,
}
# (socket module, select module, selectors classes) for each side
SIDES = {
    "kernel": (kernel, kernel_select, {"epoll": selectors.EpollSelector,
                                       "poll": selectors.PollSelector,
                                       "select": selectors.SelectSelector}),
    "multisock": (msock, mselect, {"epoll": selectors_shim.MultisockEpollSelector,
                                   "poll": selectors_shim.MultisockPollSelector,
                                   "select": selectors_shim.MultisockSelectSelector}),
}


def connected(mod: Any) -> tuple[Any, Any, Any]:
    srv = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    cli.connect(srv.getsockname())
    conn, _ = srv.accept()
    return srv, cli, conn


def run_scenario(side: str, wrap: Callable[[Any], Any], check: Callable[..., Any]) -> Any:
    mod, sel, classes = SIDES[side]
    srv, cli, conn = connected(mod)
    try:
        return check(sel, classes, wrap(conn), conn, cli)
    finally:
        for s in (conn, cli, srv):
            s.close()


def poll_events(sel: Any, classes: Any, wrapped: Any, conn: Any, peer: Any) -> Any:
    p = sel.poll()
    p.register(wrapped, sel.POLLIN)
    idle = p.poll(0)
    peer.sendall(b"x")
    ready = p.poll(5000)
    return [ev for _, ev in idle], [ev for _, ev in ready]


def epoll_events(sel: Any, classes: Any, wrapped: Any, conn: Any, peer: Any) -> Any:
    with sel.epoll() as ep:
        ep.register(wrapped, sel.EPOLLIN)
        idle = ep.poll(0)
        peer.sendall(b"x")
        ready = ep.poll(5)
    return [ev for _, ev in idle], [ev for _, ev in ready]


def select_results(sel: Any, classes: Any, wrapped: Any, conn: Any, peer: Any) -> Any:
    r0, w0, x0 = sel.select([wrapped], [wrapped], [wrapped], 0)
    peer.sendall(b"x")
    r1, _, _ = sel.select([wrapped], [], [], 5)
    return ([o is wrapped for o in r0], [o is wrapped for o in w0], x0,
            [o is wrapped for o in r1])


def selector_results(kind: str) -> Callable[..., Any]:
    def check(sel: Any, classes: Any, wrapped: Any, conn: Any, peer: Any) -> Any:
        with classes[kind]() as selector:
            selector.register(wrapped, selectors.EVENT_READ | selectors.EVENT_WRITE)
            first = [(key.fileobj is wrapped, ev) for key, ev in selector.select(0)]
            selector.modify(wrapped, selectors.EVENT_READ)
            idle = selector.select(0)
            peer.sendall(b"x")
            ready = [(key.fileobj is wrapped, ev) for key, ev in selector.select(5)]
        return first, idle, ready

    return check


CHECKS: dict[str, Callable[..., Any]] = {
    "poll": poll_events,
    "epoll": epoll_events,
    "select": select_results,
    **{f"selector-{k}": selector_results(k) for k in ("epoll", "poll", "select")},
}


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_wrapped_socket_as_the_kernel_sees_it(host: multisock.Host, check: str,
                                              wrapper: str) -> None:
    expected = run_scenario("kernel", WRAPPERS[wrapper], CHECKS[check])
    got = run_scenario("multisock", WRAPPERS[wrapper], CHECKS[check])
    assert got == expected


def test_expected_values_are_not_vacuous(host: multisock.Host) -> None:
    """The side-by-side comparison above compares something: idle, then readable."""
    assert run_scenario("kernel", WRAPPERS["mock"], poll_events) == ([], [kernel_select.POLLIN])


def test_poll_of_a_wrapped_kernel_family_socket(host: multisock.Host) -> None:
    """A multisock socket of a kernel family (AF_UNIX) wrapped: the kernel's fd, polled by
    the kernel (a wrapper's made-up ``_userspace`` must not turn it into a userspace one)."""
    a, b = msock.socketpair()
    try:
        p = mselect.poll()
        p.register(mock.Mock(wraps=a), mselect.POLLIN)
        assert p.poll(0) == []
        b.sendall(b"x")
        assert p.poll(5000) == [(a.fileno(), mselect.POLLIN)]
    finally:
        a.close()
        b.close()


def test_green_readiness_helpers_find_the_core_by_type(host: multisock.Host) -> None:
    """multisock.green's wait_* share the same lookup: a wrapper finds the real core."""
    from multisock.green import _core_of_fd

    srv, cli, conn = connected(msock)
    try:
        assert _core_of_fd(mock.Mock(wraps=conn)) is conn._sock
        assert _core_of_fd(Proxy(conn)) is conn._sock
        assert _core_of_fd(conn.fileno()) is conn._sock
        assert _core_of_fd(conn) is conn._sock
    finally:
        for s in (conn, cli, srv):
            s.close()
