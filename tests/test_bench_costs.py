"""``python -m bench --quick --only costs`` runs and gives every row of the group (figures
are not asserted: benchmarks are not tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_costs_rows_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "costs",
                             "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    rows = {r["scenario"]: r for r in data["rows"]}
    assert all(name.startswith("costs: ") for name in rows)
    for name in ("hand-off: notify -> woken thread",
                 "hand-off: notify -> woken thread, one CPU",
                 "hand-off, one CPU: CPU per wake-up",
                 "TCP 1-byte RTT CPU, one thread",
                 "TCP 1-byte RTT CPU, two threads on one CPU",
                 "socket() + close(), CPU",
                 "socket() + bind() + listen() + close(), CPU",
                 "connect + accept + close, CPU"):
        r = rows[f"costs: {name}"]
        assert r["multisock_median"] > 0 and r["kernel_median"] > 0  # both measured
        assert len(r["multisock"]) == len(r["kernel"]) == 2  # quick: two repetitions each
    # the derived rows are there (differences: their sign is the machine's business)
    assert "costs: wake-up + hand-off CPU per direction ((2 threads - 1 thread) / 2)" in rows
    assert "kernel_missing" in rows["costs: wake-up path beyond the hand-off, CPU per direction"]
    assert len(rows) == 15
