"""RIPv2 daemons on virtual routers (timers shortened ~100x, so each test takes seconds of
real time: the waits poll the routing tables, never sleep a fixed time)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

import multisock
from multisock.net.host import Host
from multisock.routingd import start_daemon
from multisock.routingd.common import Daemon
from multisock.routingd.rip import INFINITY, RESPONSE, decode, encode

FAST = {"update": "200ms", "timeout": "1s", "garbage": "600ms"}


def _eventually(check: Callable[[], bool], limit: float = 10.0) -> float:
    """Seconds until ``check()`` holds (polled); fails after ``limit`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise AssertionError("never converged")
        time.sleep(0.02)
    return time.monotonic() - start


def _route(host: Host, dst: str) -> str | None:
    route = host.ip.route(socket.inet_aton(dst))
    return None if route is None or route.gateway is None else socket.inet_ntoa(route.gateway)


def test_messages_round_trip() -> None:
    entries = [((bytes([10, 1, 0, 0]), 16), bytes(4), 3), ((bytes(4), 0), bytes(4), INFINITY)]
    command, parsed = decode(encode(RESPONSE, entries))
    assert command == RESPONSE
    assert [(p, nh, m) for _afi, p, nh, m in parsed] == entries
    with pytest.raises(ValueError):
        decode(b"\x02\x02\x00\x00" + b"\x00" * 19)


@pytest.fixture
def ring() -> Iterator[tuple[multisock.Network, list[Host], list[Daemon], list[multisock.Link]]]:
    """r0 - r1 - r2 - r3 - r0, and a stub network 10.9.0.0/24 on r2."""
    net = multisock.Network(seed=5)
    r = [net.add_router(f"r{i}") for i in range(4)]
    links = [net.link(r[i], r[(i + 1) % 4], a_addr=f"10.0.{i}.1/30", b_addr=f"10.0.{i}.2/30")
             for i in range(4)]
    stub = net.add_host("stub")
    net.link(r[2], stub, a_addr="10.9.0.1/24", b_addr="10.9.0.2/24")
    daemons = [start_daemon(x, "rip", FAST) for x in r]
    try:
        yield net, r, daemons, links
    finally:
        for d in daemons:
            d.stop()
        net.close()


def test_ring_converges_and_reroutes_after_a_link_failure(ring) -> None:  # type: ignore[no-untyped-def]
    net, r, daemons, links = ring
    _eventually(lambda: all(_route(x, "10.9.0.2") or x is r[2] for x in r))
    assert _route(r[1], "10.9.0.2") == "10.0.1.2"  # r1 -> r2 directly: one hop
    assert _route(r[0], "10.9.0.2") in ("10.0.0.2", "10.0.3.1")  # two hops either way
    assert r[0].ping("10.9.0.1") > 0
    links[1].down()  # r1 - r2: r1 must go round through r0, r3
    took = _eventually(lambda: _route(r[1], "10.9.0.2") == "10.0.0.1")
    # a cut link is silent: only the route's timeout (1 s after the last update, sent at
    # most 0.2 s before the cut) can tell; no upper bound in real time (a loaded machine
    # failed one of 3.6 s), _eventually's limit catches a route that never moves
    assert took >= 0.75
    # the reply's way back: r2's route to r1's address (10.0.0.0/30) times out on its own
    # clock, and until then r2 answers into the cut link
    _eventually(lambda: _route(r[2], "10.0.0.2") == "10.0.2.2")
    assert r[1].ping("10.9.0.1", timeout=2.0) > 0
    assert all(not d.errors for d in daemons)


def test_counting_to_infinity_is_bounded(ring) -> None:  # type: ignore[no-untyped-def]
    net, r, daemons, links = ring
    _eventually(lambda: all(_route(x, "10.9.0.2") or x is r[2] for x in r))
    stub_iface = r[2].ip.interface("eth2")
    stub_iface.up = False  # the stub network is gone (carrier lost)
    _eventually(lambda: all(x.ip.route(socket.inet_aton("10.9.0.2")) is None for x in r))
    # no router ever believed in a path of 16 hops or more; the ring is 4 routers long
    assert max(d.max_metric_seen for d in daemons) < INFINITY  # type: ignore[attr-defined]
    stub_iface.up = True
    _eventually(lambda: _route(r[0], "10.9.0.2") is not None)
