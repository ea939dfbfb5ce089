"""ICMP echo through the gateway. The kernel side runs in a network namespace each test
creates (``unshare -n``, root): only its own loopback exists there, and its
``net.ipv4.ping_group_range`` (per namespace) is set to allow or deny ping sockets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from multisock.net.network import Network

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open("/proc/sys/net/ipv4/ping_group_range", "w") as f:
    f.write(sys.argv[1])
from multisock.net.network import Network
net = Network(seed=1)
gw = net.add_gateway()
app = net.add_host("app")
gw.attach(app)
out = {}
for dst in ("10.0.2.2", "fd00::2", "192.0.2.1"):  # 192.0.2.1: no route in this namespace
    try:
        app.ping(dst, timeout=2)
        out[dst] = "reply"
    except TimeoutError:
        out[dst] = "timeout"
out["counters"] = gw.icmp.counters
out["fds"] = gw.kernel_fds()
net.close()
out["fds_after"] = gw.kernel_fds()
print(json.dumps(out))
"""


def _in_netns(ping_range: str) -> dict[str, object]:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip to make a network namespace for the kernel side")
    result = subprocess.run(["unshare", "-n", sys.executable, "-c", CHILD, ping_range],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip(f"cannot make a network namespace: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ping_to_the_gateway_is_relayed_to_the_kernel_loopback() -> None:
    out = _in_netns("0 2147483647")  # every group may open ping sockets
    assert out["10.0.2.2"] == "reply" and out["fd00::2"] == "reply"
    assert out["192.0.2.1"] == "timeout"  # no fake reply from an address nobody has
    counters = out["counters"]
    assert isinstance(counters, dict)
    assert counters["requests"] == 2 and counters["replies"] == 2 and counters["denied"] == 0
    assert out["fds"] == 3 and out["fds_after"] == 0


def test_ping_sockets_denied_answers_only_the_gateway_itself() -> None:
    out = _in_netns("1 0")  # nobody: the kernel refuses ping sockets (EACCES)
    assert out["10.0.2.2"] == "reply" and out["fd00::2"] == "reply"  # the loopback answers
    assert out["192.0.2.1"] == "timeout"
    counters = out["counters"]
    assert isinstance(counters, dict)
    assert counters["requests"] == 0 and counters["denied"] == 3
    assert out["fds"] == 0


def test_no_fake_reply_from_a_virtual_only_address() -> None:
    # before the relay, the transparent gateway answered every echo request itself
    net = Network(seed=1)
    try:
        gateway = net.add_gateway()
        app = net.add_host("app")
        gateway.attach(app)
        app.add_route("10.0.2.77/32", via="10.0.2.2")
        with pytest.raises(TimeoutError):
            app.ping("10.0.2.77", timeout=0.5)
        assert gateway.icmp.counters["requests"] == 0
    finally:
        net.close()
