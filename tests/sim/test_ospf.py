"""OSPFv2 daemons on virtual routers (hello 100 ms, dead 500 ms: timers shortened ~80x, so
each test takes about a second of real time; waits poll the routing tables)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import multisock
from multisock.net.host import Host
from multisock.routingd import start_daemon
from multisock.routingd.common import Daemon
from multisock.routingd.ospf import (
    HELLO,
    LS_ACK,
    LS_UPDATE,
    P2P,
    STUB,
    Lsa,
    decode,
    encode_ack,
    encode_hello,
    encode_update,
)
from multisock.sim import load

FAST = {"hello": "100ms", "dead": "500ms", "retransmit": "300ms"}


def _eventually(check: Callable[[], bool], limit: float = 10.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise AssertionError("never converged")
        time.sleep(0.02)
    return time.monotonic() - start


def _gateways(host: Host, prefix: str) -> set[str]:
    """The next hops of every route ``host`` has to exactly ``prefix`` (an ECMP group)."""
    network, length = prefix.split("/")
    return {socket.inet_ntoa(r.gateway) for r in host.ip.routes.routes()
            if r.prefix == socket.inet_aton(network) and r.length == int(length)
            and r.gateway is not None}


def _answers(host: Host, dst: str) -> bool:
    """One echo, answered within 0.5 s (a route both ways, at that moment)."""
    try:
        return host.ping(dst, timeout=0.5) > 0
    except TimeoutError:
        return False


def test_messages_round_trip() -> None:
    rid = bytes([10, 0, 0, 1])
    kind, router, body = decode(encode_hello(rid, b"\xff\xff\xff\xfc", 0.1, 0.5,
                                             [bytes([10, 0, 0, 2])]))
    assert (kind, router, body) == (HELLO, rid, (b"\xff\xff\xff\xfc", 0.1, 0.5,
                                                 [bytes([10, 0, 0, 2])]))
    lsa = Lsa(rid, 7, [(P2P, bytes([10, 0, 0, 2]), bytes([10, 0, 0, 5]), 10),
                       (STUB, bytes([10, 9, 0, 0]), b"\xff\xff\xff\x00", 10)])
    kind, router, (back,) = decode(encode_update(rid, [lsa]))
    assert kind == LS_UPDATE and (back.router, back.seq, back.links) == (rid, 7, lsa.links)
    assert decode(encode_ack(rid, [(rid, 7)])) == (LS_ACK, rid, [(rid, 7)])
    with pytest.raises(ValueError):
        decode(encode_update(rid, [lsa])[:-1])


@pytest.fixture
def square() -> Iterator[tuple[list[Host], list[Daemon], list[multisock.Link]]]:
    """r0 - r1 - r2 - r3 - r0 (all costs equal), a stub network 10.9.0.0/24 on r2."""
    net = multisock.Network(seed=9)
    r = [net.add_router(f"r{i}") for i in range(4)]
    links = [net.link(r[i], r[(i + 1) % 4], a_addr=f"10.0.{i}.1/30", b_addr=f"10.0.{i}.2/30")
             for i in range(4)]
    stub = net.add_host("stub")
    net.link(r[2], stub, a_addr="10.9.0.1/24", b_addr="10.9.0.2/24")
    stub.add_route("0.0.0.0/0", via="10.9.0.1")
    daemons = [start_daemon(x, "ospf", FAST) for x in r]
    try:
        yield r, daemons, links
    finally:
        for d in daemons:
            d.stop()
        net.close()


def test_mesh_converges_with_equal_cost_paths_and_reconverges(square) -> None:  # type: ignore[no-untyped-def]
    r, daemons, links = square
    _eventually(lambda: _gateways(r[0], "10.9.0.0/24") == {"10.0.0.2", "10.0.3.1"})
    # r0 is two hops from r2 both ways round: SPF keeps both first hops (ECMP)
    assert _gateways(r[1], "10.9.0.0/24") == {"10.0.1.2"}
    assert _gateways(r[3], "10.9.0.0/24") == {"10.0.2.1"}
    _eventually(lambda: _answers(r[0], "10.9.0.2"))
    _eventually(lambda: all(d.summary()["lsdb"] == 4 for d in daemons))
    links[1].down()  # r1 - r2: r1 must go round through r0 and r3
    took = _eventually(lambda: _gateways(r[1], "10.9.0.0/24") == {"10.0.0.1"})
    # a cut link is silent: only the dead interval (0.5 s after the last hello, sent at
    # most 0.1 s before the cut) can tell; a load only makes it later
    assert took >= 0.35
    # r2 may fall out of r1's SPF first (r2's own dead timer fired and its new LSA came
    # round the ring), before r1's dead timer drops r2 from its neighbours: wait for both
    _eventually(lambda: daemons[1].summary()["neighbours"] == ["10.0.3.2"])  # r0's ID only
    _eventually(lambda: _gateways(r[0], "10.9.0.0/24") == {"10.0.3.1"})
    # the reply's way back: r2 reaches r1's address (10.0.0.0/30) round the ring too
    _eventually(lambda: _gateways(r[2], "10.0.0.0/30") == {"10.0.2.2"})
    _eventually(lambda: _answers(r[1], "10.9.0.2"))
    links[1].up()  # back: the short way and both equal paths return
    _eventually(lambda: _gateways(r[1], "10.9.0.0/24") == {"10.0.1.2"})
    _eventually(lambda: _gateways(r[0], "10.9.0.0/24") == {"10.0.0.2", "10.0.3.1"})
    assert all(not d.errors for d in daemons)


def test_mismatched_intervals_form_no_adjacency() -> None:
    net = multisock.Network(seed=9)
    a, b = net.add_router("a"), net.add_router("b")
    net.link(a, b, a_addr="10.0.0.1/30", b_addr="10.0.0.2/30")
    da = start_daemon(a, "ospf", FAST)
    db = start_daemon(b, "ospf", {**FAST, "hello": "150ms"})
    try:
        _eventually(lambda: da.counters["bad_messages"] >= 2 and db.counters["bad_messages"] >= 2)
        assert da.summary()["neighbours"] == [] and db.summary()["neighbours"] == []
    finally:
        da.stop()
        db.stop()
        net.close()


def test_scenario_file_runs_ospf(tmp_path: Path) -> None:
    (tmp_path / "o.toml").write_text("""
[network]
until = "1s"
[[host]]
name = "h1"
routes = ["default via 10.0.1.1"]
[[host]]
name = "h2"
routes = ["default via 10.0.2.1"]
[[router]]
name = "r1"
routing = "ospf"
ospf = { hello = "100ms", dead = "500ms" }
[[router]]
name = "r2"
routing = "ospf"
ospf = { hello = "100ms", dead = "500ms" }
[[link]]
a = "h1"
b = "r1"
a_addr = "10.0.1.2/24"
b_addr = "10.0.1.1/24"
[[link]]
a = "r1"
b = "r2"
a_addr = "10.0.12.1/30"
b_addr = "10.0.12.2/30"
[[link]]
a = "r2"
b = "h2"
a_addr = "10.0.2.1/24"
b_addr = "10.0.2.2/24"
""")
    scenario = load(str(tmp_path / "o.toml"))
    try:
        _eventually(lambda: _gateways(scenario.hosts["r1"], "10.0.2.0/24") == {"10.0.12.2"})
        _eventually(lambda: _gateways(scenario.hosts["r2"], "10.0.1.0/24") == {"10.0.12.1"})
        _eventually(lambda: _answers(scenario.hosts["h1"], "10.0.2.2"))
        assert scenario.daemons["r1"].summary()["protocol"] == "ospf"
    finally:
        for d in scenario.daemons.values():
            d.stop()
        scenario.net.close()


def test_library_scenario_loses_pings_only_until_the_dead_interval() -> None:
    """examples/scenarios/ospf.toml's lesson: the cut costs pings only after it happens,
    the path left carries the rest, and r1 ends with the one route round the other way."""
    path = Path(__file__).resolve().parent.parent.parent / "examples" / "scenarios" / "ospf.toml"
    with load(str(path)) as scenario:
        data = scenario.run().data
    samples = next(t for t in data["traffic"] if t["name"] == "ping")["samples"]
    lost = [t for t, rtt in samples if rtt is None]
    # sample times count from the pings' start (600 ms): nothing lost before the cut at 1 s
    assert all(t + 0.6 >= 0.95 for t in lost), lost
    assert all(rtt is not None for _t, rtt in samples[-5:])
    assert all(not data["routing"][r]["errors"] for r in ("r1", "r2", "r3", "r4"))
    to_h2 = [r for r in data["routes"]["r1"] if r.startswith("10.0.3.0/24")]
    assert to_h2 and all("10.1.41.1" in r for r in to_h2), to_h2
