"""The "multisock" section a failing test's report carries: what it takes to see it again.

The per-connection table is exactly what ``python -m multisock run --stats`` prints
(``multisock.launch.print_stats``), captured rather than re-implemented.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import sys
from typing import Any


def reproduce_command(nodeid: str, options: list[str], rootdir: str, invocation_dir: str) -> str:
    """The command line that runs this one test again with the same seeds."""
    words = [sys.executable, "-m", "pytest", nodeid, *options]
    command = " ".join(shlex.quote(w) for w in words)
    if os.path.abspath(rootdir) != os.path.abspath(invocation_dir):
        command = f"cd {shlex.quote(rootdir)} && {command}"
    return command


def stats_table(host: Any) -> str:
    """``--stats``' text for ``host`` (connections its test made, listeners, IP counters)."""
    from multisock.launch import print_stats

    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        # the host's network's gateways too: their flows are the test's traffic with the
        # outside, as run --stats shows them
        print_stats(host, list(getattr(host.net, "gateways", ())))
    return out.getvalue().rstrip("\n")


def section(*, seed: int, session_seed: int, seed_from: str, command: str,
            host: Any, impairments: dict[str, Any], pcaps: list[str]) -> str:
    lines = [
        f"seed: {seed} ({seed_from}; session seed {session_seed})",
        f"reproduce: {command}",
    ]
    if impairments:
        lines.append("loopback: " + " ".join(f"{k}={v}" for k, v in impairments.items()))
    if host is not None:
        counters = getattr(host.loopback_impairment, "counters", None)
        if counters and counters.get("offered"):
            lines.append("loopback fates: " + " ".join(f"{k}={v}" for k, v in counters.items()
                                                       if v))
    for path in pcaps:
        lines.append(f"pcap: {path}")
    if host is not None:
        lines.append(stats_table(host))
    return "\n".join(lines)
