"""The scenario library (examples/scenarios/): each file's lesson, asserted. These run in
real time (a few seconds each) until virtual time drives the clock; rates are kept low so
a loaded 2-core machine still moves every byte the links allow."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from multisock.sim import load
from multisock.sim.metrics import jain_index, mathis_bps

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "scenarios"


def _run(name: str, **kw: object) -> dict:  # type: ignore[type-arg]
    with load(str(EXAMPLES / f"{name}.toml")) as sc:
        return sc.run(**kw).data  # type: ignore[arg-type]


def _traffic(data: dict, name: str) -> dict:  # type: ignore[type-arg]
    return next(t for t in data["traffic"] if t["name"] == name)


def test_cubic_and_reno_share_a_bottleneck_fairly() -> None:
    data = _run("fairness")
    cubic, reno = (_traffic(data, n)["flows"][0] for n in ("cubic", "reno"))
    assert (cubic["cc"], reno["cc"]) == ("cubic", "reno")
    assert jain_index([cubic["bps"], reno["bps"]]) > 0.85
    assert 2.5e6 < cubic["bps"] + reno["bps"] <= 4e6  # the bottleneck is 4 Mbit/s


def test_bufferbloat_a_big_queue_adds_delay_not_throughput() -> None:
    data = _run("bufferbloat")
    loaded = {n: [rtt for t, rtt in _traffic(data, f"ping-{n}")["samples"] if rtt]
              for n in ("small", "big")}
    assert loaded["small"] and loaded["big"]
    # ~600 ms of queue against ~60 ms at their worst (a flow recovering from a timeout
    # drains its queue for a while, so the peak is what is steady, not the median)
    assert max(loaded["big"]) > 3 * statistics.median(loaded["small"])
    assert max(loaded["big"]) > 2 * max(loaded["small"])
    queues = {n: data["links"][f"{n}:a{1 if n == 'small' else 2}:eth0->b{1 if n == 'small' else 2}:eth0"]
              ["max_queue"] for n in ("small", "big")}
    assert queues["small"] <= 10 < 50 <= queues["big"]  # each flow filled what it was given
    small_bps, big_bps = (_traffic(data, f"load-{n}")["bps"] for n in ("small", "big"))
    assert big_bps < 1.5 * small_bps  # the big buffer bought no throughput


def test_loss_limits_reno_as_mathis_predicts() -> None:
    data = _run("mathis")
    p1, p4 = (_traffic(data, n)["flows"][0] for n in ("p1", "p4"))
    assert p1["bps"] > 1.5 * p4["bps"]  # four times the loss, about half the rate
    for flow, loss in ((p1, 0.01), (p4, 0.04)):
        predicted = mathis_bps(1448, 0.020, loss)
        assert predicted / 2.5 < flow["bps"] < predicted * 2.5


def test_rip_failover_restores_connectivity() -> None:
    data = _run("failover")
    samples = _traffic(data, "ping")["samples"]
    lost = [t for t, rtt in samples if rtt is None]
    assert lost, "the cut must cost some pings"
    assert all(rtt is not None for t, rtt in samples[-5:]), "and RIP must route around it"
    assert min(lost) >= 0.4 and max(lost) <= 0.5 + 1.5 + 1.5  # within timeout + updates
    assert data["routing"]["r1"]["errors"] == []
    assert any("10.1.41.1" in r for r in data["routes"]["r1"] if r.startswith("10.0.3.0"))


@pytest.mark.parametrize("name", ["basic"])
def test_basic_example_runs(name: str) -> None:
    data = _run(name, until=2.0)
    assert _traffic(data, "iperf")["bps"] > 1e6 and _traffic(data, "web")["requests"] >= 1
