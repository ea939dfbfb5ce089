"""Network namespaces for TUN tests: created per test, removed even on failure.

Everything of a TUN test — the multisock stack with its TUN device and the
kernel peers (http.server, curl, raw-socket ping) — runs inside the namespace,
so the only addresses ever used are the namespace's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "TUN tests need root (CAP_NET_ADMIN for ip netns and /dev/net/tun); not root here"
    if not os.path.exists("/dev/net/tun"):
        return "TUN tests need /dev/net/tun, which this machine lacks"
    if shutil.which("ip") is None:
        return "TUN tests need iproute2's 'ip' command, not installed here"
    try:
        import pytun  # noqa: F401
    except ImportError:
        return "TUN tests need python-pytun (pip install '.[tun]'), not installed here"
    return None


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name

    def cmd(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout,
                              check=check)

    def popen(self, *args: str, **kwargs: object) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        return subprocess.Popen(self.cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, **kwargs)  # type: ignore[call-overload]

    def python(self, *args: str) -> list[str]:
        return [sys.executable, *args]


@contextmanager
def namespace() -> Iterator[Namespace]:
    name = f"msk-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield Namespace(name)
    finally:
        # kill whatever is left inside, then remove the namespace
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
        for pid in pids.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], check=False)
