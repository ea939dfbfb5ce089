"""The loss rows of ``python -m bench``: multisock and the kernel through the same impairment
(``bench/bench_loss.py``). Figures are not asserted (benchmarks are not tests); what is:
the seeded fates the two paths share, the kernel column's reason when it cannot be measured,
and (root with TUN) that the quick rows run with the kernel's figures and leave no namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import multisock
from bench import bench_loss

ROOT = Path(__file__).resolve().parent.parent


class _Sink:
    name = "sink"

    def deliver(self, packet: bytes, next_hop: bytes, now: float) -> None:
        pass


def _fates(link: object, n: int) -> list[bool]:
    """Whether each of ``n`` packets survives, per direction, in the order they are offered."""
    out = []
    for direction in link.directions:  # type: ignore[attr-defined]
        out += [bool(direction.impairment.offer(b"p" * 100, 0.0)) for _ in range(n)]
    return out


def _network_link_fates(seed: int, loss: float, n: int) -> list[bool]:
    with multisock.Network(seed=seed) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        return _fates(net.link(a, b, delay=bench_loss.ONE_WAY, loss=loss, mtu=1500), n)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_forwarder_decides_the_fates_network_link_decides_for_the_same_seed(
        seed: int) -> None:
    with multisock.Network(seed=seed) as net:
        ours = _fates(bench_loss.forwarding_link(net, _Sink(), _Sink(), 0.05), 2000)
    assert ours == _network_link_fates(seed, 0.05, 2000)
    assert 100 < ours.count(False) < 300  # ~5 % of 4000 lost: the comparison is not vacuous
    assert ours != _network_link_fates(seed + 10, 0.05, 2000)  # another seed: other fates


def test_without_root_the_kernel_column_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = bench_loss.unavailable_reason()
    assert reason is not None and "root" in reason


def test_quick_mode_without_namespaces_keeps_the_row_and_names_the_reason() -> None:
    (r,) = bench_loss.rows(quick=True, namespaces=False, losses=(0.05,))
    assert r["scenario"] == "TCP goodput, 5 % loss, 20 ms RTT"
    assert "kernel_median" not in r and "ratio_median" not in r
    assert r["kernel_missing"].startswith("not measured: quick mode builds no namespaces")
    assert r["multisock_median"] > 0 and r["mathis_mbps"] > 0


@pytest.mark.skipif(bench_loss.unavailable_reason() is not None,
                    reason=f"the loss rows' kernel side: {bench_loss.unavailable_reason()}")
def test_quick_loss_rows_measure_the_kernel_and_remove_their_namespaces(
        tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "--quick", "--only", "loss",
                             "--json", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    rows = {r["scenario"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {bench_loss.scenario(loss) for loss in bench_loss.LOSSES}
    for r in rows.values():
        # one kernel run per seed, beside multisock's of the same seed
        assert len(r["kernel"]) == len(r["multisock"]) == len(r["seeds"])
        assert r["ratio_median"] == r["multisock_median"] / r["kernel_median"]
        assert r["tun_drops"] >= 0
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"msbench-a-{proc.pid}" not in listed and f"msbench-b-{proc.pid}" not in listed
