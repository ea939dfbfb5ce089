"""Simulation: virtual time, deterministic replay by seed, fault schedules, and scenario files,
traffic generators, metrics and plots.

Exports are lazy (``import multisock.sim`` loads nothing below it), one per line in
``_EXPORTS``: name -> the module that defines it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "run": "multisock.sim.runner",
    "Simulation": "multisock.sim.runner",
    "swizzle": "multisock.sim.faults",
    "SimulationError": "multisock.net.virtual_driver",
    "SimulationDeadlock": "multisock.net.virtual_driver",
    "SimulationTimeout": "multisock.net.virtual_driver",
    "NondeterminismError": "multisock.net.virtual_driver",
    "load": "multisock.sim.scenario",
    "loads": "multisock.sim.scenario",
    "Scenario": "multisock.sim.scenario",
    "Results": "multisock.sim.scenario",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'multisock.sim' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
