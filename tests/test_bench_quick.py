"""``python -m bench --quick`` runs (figures are not asserted: benchmarks are not tests)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_mode_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    names = {r["scenario"] for r in rows}
    for expected in ("TCP bulk, in-process link", "TCP 1-byte RTT (TCP_NODELAY)",
                     "TCP connect+accept+close", "HTTP GET 1 KiB, requests.Session",
                     "UDP 1 KiB one way", "UDP 1 KiB echo", "footprint: import + patch_all + host",
                     "TCP goodput, 1 % loss, 20 ms RTT"):
        assert expected in names
    assert any(n.startswith("RSS per idle connection") for n in names)
    assert any(n.endswith("parallel flows, Jain index") for n in names)
    # every figure is positive but the one row that is a difference of differences: the
    # wake-up path beyond the hand-off (two-thread less one-thread CPU, less the hand-off's
    # own CPU) reads below zero when the hand-off microbenchmark's wake costs more than the
    # socket path's (the compiled build's eventfd wake, measured -0.8 µs): finite, not > 0
    beyond = "costs: wake-up path beyond the hand-off, CPU per direction"
    assert all(r["multisock_median"] > 0 for r in rows if r["scenario"] != beyond)
    assert all(math.isfinite(r["multisock_median"]) for r in rows if r["scenario"] == beyond)
    # the default quick run builds no namespaces: the loss rows' kernel cell says so
    loss = next(r for r in rows if r["scenario"] == "TCP goodput, 1 % loss, 20 ms RTT")
    assert loss["kernel_missing"].startswith("not measured: quick mode builds no namespaces")
    # every row with a kernel counterpart carries the same-run kernel figure and the ratio
    for r in rows:
        if "kernel_median" in r:
            assert r["ratio_median"] == r["multisock_median"] / r["kernel_median"]


def tun_rows_unavailable() -> str | None:
    """Why the TUN rows cannot run here (they need what the TUN tests need, and curl as the
    kernel side's HTTP client), or None."""
    from tests.tun.netns import unavailable_reason

    reason = unavailable_reason()
    if reason is None and shutil.which("curl") is None:
        reason = "the TUN bench rows need curl (the kernel side's HTTP client), not installed here"
    return reason


@pytest.mark.skipif(tun_rows_unavailable() is not None, reason=str(tun_rows_unavailable()))
def test_bench_quick_tun_rows_run(tmp_path: Path) -> None:
    """Quick mode leaves TUN out of the default run: this runs just those rows (~5 s)."""
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "tun",
                             "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    names = {r["scenario"] for r in rows}
    for mtu in (1500, 65535):
        assert f"TUN MTU {mtu}: kernel downloads from multisock" in names
        assert f"TUN MTU {mtu}: multisock downloads from kernel" in names
    # every figure is positive but the one row that is a difference of differences: the
    # wake-up path beyond the hand-off (two-thread less one-thread CPU, less the hand-off's
    # own CPU) reads below zero when the hand-off microbenchmark's wake costs more than the
    # socket path's (the compiled build's eventfd wake, measured -0.8 µs): finite, not > 0
    beyond = "costs: wake-up path beyond the hand-off, CPU per direction"
    assert all(r["multisock_median"] > 0 for r in rows if r["scenario"] != beyond)
    assert all(math.isfinite(r["multisock_median"]) for r in rows if r["scenario"] == beyond)
