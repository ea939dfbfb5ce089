"""The impairment model on its own: 100k packets per case, seeded, against the configuration."""

from __future__ import annotations

import random

import pytest

from multisock.net.impairments import REORDER_HOLD, GilbertElliott, Impairment
from multisock.net.units import parse_duration, parse_probability, parse_rate, parse_size

N = 100_000
PACKET = bytes(100)


def fates(seed: int, n: int = N, spacing: float = 1e-4, **settings: object) -> list[list[tuple[float, bytes]]]:
    imp = Impairment(random.Random(seed), **settings)
    return [imp.offer(PACKET, i * spacing) for i in range(n)]


def within(observed: int, p: float, n: int = N) -> bool:
    sigma = (n * p * (1 - p)) ** 0.5
    return abs(observed - n * p) <= 4 * sigma + 1


@pytest.mark.parametrize("p", [0.01, 0.05, 0.2])
def test_bernoulli_loss_rate(p: float) -> None:
    lost = sum(1 for f in fates(1, loss=p) if not f)
    assert within(lost, p)


def test_gilbert_elliott_mean_and_bursts() -> None:
    ge = GilbertElliott(p=0.01, r=0.25)
    imp = Impairment(random.Random(2), loss=ge)
    outcome = [bool(imp.offer(PACKET, i * 1e-4)) for i in range(N)]
    lost = outcome.count(False)
    assert abs(lost / N - ge.mean_loss) < 0.01
    runs, current = [], 0
    for delivered in outcome:
        if not delivered:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert abs(sum(runs) / len(runs) - 1 / 0.25) < 0.5  # mean burst length 1/r


def test_same_seed_same_sequence_different_seed_differs() -> None:
    settings = dict(loss=0.1, delay="2ms", jitter="1ms", reorder=0.05, duplicate=0.02, corrupt=0.01)
    assert fates(7, 5000, **settings) == fates(7, 5000, **settings)
    assert fates(7, 5000, **settings) != fates(8, 5000, **settings)


@pytest.mark.parametrize("p", [0.01, 0.1])
def test_duplicate_and_corrupt_rates(p: float) -> None:
    dup = sum(1 for f in fates(3, duplicate=p) if len(f) == 2)
    assert within(dup, p)
    corrupted = sum(1 for f in fates(4, corrupt=p) if f[0][1] != PACKET)
    assert within(corrupted, p)


def test_delay_and_jitter_never_reorder() -> None:
    arrivals = [f[0][0] for f in fates(5, n=20000, delay="5ms", jitter="4ms")]
    assert arrivals == sorted(arrivals)
    assert min(a - i * 1e-4 for i, a in enumerate(arrivals)) >= 0.001 - 1e-9


def test_reorder_fraction_and_overtaking() -> None:
    imp = Impairment(random.Random(6), delay="5ms", reorder=0.05)
    results = [imp.offer(PACKET, i * 1e-4) for i in range(N)]
    assert within(imp.counters["reordered"], 0.05)
    arrivals = [r[0][0] for r in results]
    assert arrivals != sorted(arrivals)
    held = Impairment(random.Random(6), reorder=1.0).offer(PACKET, 1.0)
    assert held[0][0] == pytest.approx(1.0 + REORDER_HOLD)


def test_rate_spacing_and_tail_drop() -> None:
    imp = Impairment(random.Random(7), rate="8mbit", queue=10)
    out = [imp.offer(bytes(1000), 0.0) for _ in range(20)]  # 1 ms each at 8 Mbit/s
    delivered = [o[0][0] for o in out if o]
    assert len(delivered) == 10 and imp.counters["queue_dropped"] == 10
    gaps = [b - a for a, b in zip(delivered, delivered[1:], strict=False)]
    assert all(g == pytest.approx(0.001) for g in gaps)


def test_down_drops_everything_and_set_takes_effect() -> None:
    imp = Impairment(random.Random(8))
    assert imp.is_ideal
    imp.set(up=False)
    assert imp.offer(PACKET, 0.0) == [] and imp.counters["down_dropped"] == 1
    imp.set(up=True, delay="3ms")
    assert not imp.is_ideal
    assert imp.offer(PACKET, 1.0)[0][0] == pytest.approx(1.003)
    with pytest.raises(TypeError):
        imp.set(bandwidth="1mbit")


def test_units() -> None:
    assert parse_duration("5ms") == pytest.approx(0.005)
    assert parse_duration("100us") == pytest.approx(1e-4)
    assert parse_rate("10mbit") == 10_000_000
    assert parse_rate("1mbps") == 8_000_000
    assert parse_probability("1%") == pytest.approx(0.01)
    assert parse_probability(0.2) == 0.2
    assert parse_size("64k") == 65536
    for bad in ("5 parsecs", "-1ms"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError):
        parse_probability("150%")
