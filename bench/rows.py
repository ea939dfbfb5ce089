"""One benchmark row: the shape ``python -m bench`` prints and writes as JSON.

Shared by every scenario module that hands rows to ``bench.__main__`` (``bench_gevent``
too), so that min, median and ratio are computed one way everywhere.
"""

from __future__ import annotations

import statistics
from typing import Any


def row(name: str, unit: str, ours: list[float], kernel: list[float] | None,
        higher_is_better: bool, **extra: Any) -> dict[str, Any]:
    """All repetitions, min and median of each side, and the ratio of medians.

    ``kernel``: the kernel's figures from the same run, or ``None`` where the scenario has
    no kernel counterpart (then the row has no kernel columns and no ratio).
    """
    out: dict[str, Any] = {"scenario": name, "unit": unit, "higher_is_better": higher_is_better,
                           "multisock": ours, "multisock_min": min(ours),
                           "multisock_median": statistics.median(ours)}
    if kernel:
        out["kernel"] = kernel
        out["kernel_min"] = min(kernel)
        out["kernel_median"] = statistics.median(kernel)
        out["ratio_median"] = out["multisock_median"] / out["kernel_median"]
    out.update(extra)
    return out
