"""What the command line and the marker ask for, checked once, and the seeds derived from it.

Kept free of the stack: the plugin is loaded into every pytest run of a process where
multisock is installed, and a run that never asks for multisock must not pay for it. The
unit parsers (``multisock.net.units``) are imported only when an option or marker is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

#: link impairments, in the order ``python -m multisock run`` lists them
IMPAIRMENTS = ("delay", "jitter", "loss", "reorder", "duplicate", "corrupt", "rate")
_TIMES = ("delay", "jitter")
_PROBABILITIES = ("loss", "reorder", "duplicate", "corrupt")
#: keywords the marker accepts besides the impairments
MARKER_KEYWORDS = (*IMPAIRMENTS, "mtu", "seed", "virtual_time")
_HAS_UNIT = re.compile(r"[a-zA-Zµ]\s*$")


class SettingError(ValueError):
    """A value an option or the marker cannot take (the message names which and why)."""


def check_impairment(name: str, value: Any, where: str) -> Any:
    """``value`` if it is a valid ``name``, else :class:`SettingError` saying why.

    Times and rates need a unit (``10ms``, ``10mbit``): a bare ``10`` is refused rather
    than guessed (10 s? 10 ms?). Probabilities are ``1%`` or a fraction (``0.01``)."""
    from multisock.net import units

    try:
        if name in _TIMES:
            if not isinstance(value, str) or not _HAS_UNIT.search(value):
                raise ValueError(f"{value!r} needs a time unit (e.g. 10ms, 500us, 1s)")
            units.parse_duration(value)
        elif name == "rate":
            if not isinstance(value, str) or not _HAS_UNIT.search(value):
                raise ValueError(f"{value!r} needs a rate unit (e.g. 10mbit, 100kbit)")
            units.parse_rate(value)
        elif name in _PROBABILITIES:
            units.parse_probability(value)
        else:
            raise ValueError(f"unknown impairment {name!r}")
    except ValueError as exc:
        raise SettingError(f"{where}: {exc}") from None
    return value


def derive_seed(base: int, label: str) -> int:
    """A 32-bit seed from ``base`` and a label (a node id): stable across processes,
    Python versions and xdist workers (BLAKE2, never the salted ``hash()``)."""
    digest = blake2b(f"{base}:{label}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


@dataclass
class Settings:
    """The run's multisock configuration (from the ``--multisock*`` options)."""

    enabled: bool = False  # --multisock: every test on the userspace stack
    impairments: dict[str, Any] = field(default_factory=dict)
    mtu: int | None = None
    seed: int | None = None  # --multisock-seed as given (None: chosen per run)
    seeds: int | None = None  # --multisock-seeds K
    pcap_dir: str | None = None
    isolated: bool = False

    @property
    def asked(self) -> bool:
        """Any multisock option on the command line (the header then shows the seed)."""
        return (self.enabled or bool(self.impairments) or self.mtu is not None
                or self.seed is not None or self.seeds is not None
                or self.pcap_dir is not None or self.isolated)

    @classmethod
    def from_options(cls, option: Any) -> Settings:
        """From pytest's option namespace; :class:`SettingError` for a bad value."""
        impairments = {}
        for name in IMPAIRMENTS:
            value = getattr(option, f"multisock_{name}", None)
            if value is not None:
                impairments[name] = check_impairment(name, value, f"--multisock-{name}")
        seeds = getattr(option, "multisock_seeds", None)
        if seeds is not None and seeds < 1:
            raise SettingError(f"--multisock-seeds: need a count >= 1, got {seeds}")
        mtu = getattr(option, "multisock_mtu", None)
        if mtu is not None and not 68 <= mtu <= 65535:
            raise SettingError(f"--multisock-mtu: {mtu} is outside 68..65535")
        return cls(
            enabled=bool(getattr(option, "multisock", False)),
            impairments=impairments,
            mtu=mtu,
            seed=getattr(option, "multisock_seed", None),
            seeds=seeds,
            pcap_dir=getattr(option, "multisock_pcap_dir", None),
            isolated=bool(getattr(option, "multisock_isolated", False)),
        )

    def command_line(self, seed: int) -> list[str]:
        """The options that rebuild this configuration with the session seed ``seed``."""
        out: list[str] = ["--multisock"] if self.enabled else []
        for name, value in self.impairments.items():
            out += [f"--multisock-{name}", str(value)]
        if self.mtu is not None:
            out += ["--multisock-mtu", str(self.mtu)]
        out += ["--multisock-seed", str(seed)]
        if self.seeds is not None:
            out += ["--multisock-seeds", str(self.seeds)]
        if self.pcap_dir is not None:
            out += ["--multisock-pcap-dir", self.pcap_dir]
        if self.isolated:
            out.append("--multisock-isolated")
        return out


@dataclass
class MarkerSettings:
    """``@pytest.mark.multisock(...)``: impairments over the command line's, a fixed seed."""

    impairments: dict[str, Any]
    mtu: int | None
    seed: int | None
    virtual_time: bool = False  # the test runs under multisock.sim (its own network)

    @classmethod
    def from_marker(cls, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> MarkerSettings:
        where = "@pytest.mark.multisock"
        if args:
            raise SettingError(f"{where} takes keywords only ({', '.join(MARKER_KEYWORDS)})")
        unknown = sorted(set(kwargs) - set(MARKER_KEYWORDS))
        if unknown:
            raise SettingError(f"{where}: unknown keyword(s) {', '.join(unknown)}; "
                               f"known: {', '.join(MARKER_KEYWORDS)}")
        virtual_time = kwargs.get("virtual_time", False)
        if not isinstance(virtual_time, bool):
            raise SettingError(f"{where}(virtual_time=...): {virtual_time!r} is not True/False")
        impairments = {name: check_impairment(name, kwargs[name], f"{where}({name}=...)")
                       for name in IMPAIRMENTS if kwargs.get(name) is not None}
        mtu, seed = kwargs.get("mtu"), kwargs.get("seed")
        if mtu is not None and (not isinstance(mtu, int) or not 68 <= mtu <= 65535):
            raise SettingError(f"{where}(mtu=...): {mtu!r} is not an MTU in 68..65535")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise SettingError(f"{where}(seed=...): {seed!r} is not a non-negative integer")
        return cls(impairments, mtu, seed, virtual_time)
