"""Simulation tools: scenario files, traffic generators, metrics and plots.

The tools layer (``docs/architecture.md``): above activation, below the entry points. Every
name is loaded on first use, so ``import multisock.sim`` costs nothing until a scenario is
built (matplotlib, for one, is imported only by :mod:`multisock.sim.plot`).
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module that defines it; one per line (several branches add to this table)
_EXPORTS: dict[str, str] = {
    "load": "multisock.sim.scenario",
    "loads": "multisock.sim.scenario",
    "Scenario": "multisock.sim.scenario",
    "Results": "multisock.sim.scenario",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'multisock.sim' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
