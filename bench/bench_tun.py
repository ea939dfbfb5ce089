"""TUN throughput and ping RTT: kernel <-> multisock, beside kernel <-> kernel over veth.

Run as root: ``python bench/bench_tun.py [--quick]``. Everything happens inside network
namespaces this script creates and removes. Downloads are HTTP (``http.server`` on one side,
``curl``/``requests`` on the other); figures are Mbit/s of payload, min/median of repetitions.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(ROOT / "tests" / "tun" / "stack_agent.py")
PEER = str(ROOT / "tests" / "tun" / "kernel_peer.py")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, env=ENV)


def netns() -> str:
    name = f"mskb-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
    return name


def drop(name: str) -> None:
    for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    sh("ip", "netns", "del", name, check=False)


def curl_mbps(ns: str, url: str, size: int) -> float:
    start = time.monotonic()
    sh("ip", "netns", "exec", ns, "curl", "-sS", "-o", "/dev/null", "--max-time", "120", url)
    return size * 8 / (time.monotonic() - start) / 1e6


def file_server(ns: str, root: str) -> subprocess.Popen[str]:
    """``python3 -m http.server 8000`` in ``ns``, returned once it listens.

    It prints its "Serving HTTP" line after binding; a fixed sleep was too short on a busy
    machine (curl met a closed port)."""
    server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-u", "-m", "http.server",
                               "8000", "--directory", root],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    if not server.stdout.readline().startswith("Serving HTTP"):
        server.kill()
        raise RuntimeError("http.server did not start")
    return server


def agent(ns: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, AGENT, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "READY":
        raise RuntimeError(proc.communicate()[1])
    return proc


def multisock_rows(mtu: int, size: int, reps: int, offload: bool = True) -> dict[str, list[float]]:
    """``offload``: the TUN link's virtio-net offloads (large segments, checksums left to the
    kernel), as by default; without, every packet is the MTU's and checksummed in Python."""
    out: dict[str, list[float]] = {"kernel <- multisock": [], "multisock <- kernel": [],
                                   "ping RTT multisock->kernel (ms)": []}
    link = ["--addr", "10.79.0.2/24", "--peer", "10.79.0.1", "--mtu", str(mtu)]
    if not offload:
        link.append("--no-offload")
    with tempfile.TemporaryDirectory() as root:
        Path(root, "blob").write_bytes(os.urandom(size))
        for _ in range(reps):
            ns = netns()
            try:
                proc = agent(ns, "http-serve", "--port", "8080", "--target", str(size),
                             "--seconds", "120", *link)
                assert proc.stdout is not None
                proc.stdout.readline()
                out["kernel <- multisock"].append(curl_mbps(ns, "http://10.79.0.2:8080/", size))
                proc.kill()
                proc.communicate()
                server = file_server(ns, root)
                proc = agent(ns, "http-get", "--target", "10.79.0.1", "--port", "8000", *link)
                values = dict(line.split("=", 1) for line in proc.communicate()[0].splitlines()
                              if "=" in line)
                out["multisock <- kernel"].append(size * 8 / float(values["SECONDS"]) / 1e6)
                server.kill()
                server.communicate()
                proc = agent(ns, "ping", "--target", "10.79.0.1", *link)
                values = dict(line.split("=", 1) for line in proc.communicate()[0].splitlines()
                              if "=" in line)
                out["ping RTT multisock->kernel (ms)"].append(float(values["RTT_MS"]))
            finally:
                drop(ns)
    return out


def veth_row(mtu: int, size: int, reps: int) -> list[float]:
    results = []
    with tempfile.TemporaryDirectory() as root:
        Path(root, "blob").write_bytes(os.urandom(size))
        for _ in range(reps):
            a, b = netns(), netns()
            try:
                sh("ip", "link", "add", "mskva", "netns", a, "type", "veth", "peer", "name", "mskvb",
                   "netns", b)
                for ns, dev, addr in ((a, "mskva", "10.80.0.1/24"), (b, "mskvb", "10.80.0.2/24")):
                    sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "mtu", str(mtu))
                    sh("ip", "netns", "exec", ns, "ip", "addr", "add", addr, "dev", dev)
                    sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")
                server = file_server(a, root)
                results.append(curl_mbps(b, "http://10.80.0.1:8000/blob", size))
                server.kill()
                server.communicate()
            finally:
                drop(a)
                drop(b)
    return results


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_tun needs root (network namespaces and TUN)")
    quick = "--quick" in sys.argv
    size, reps = ((8 << 20), 1) if quick else ((64 << 20), 3)
    for mtu in (1500, 65535):
        rows = multisock_rows(mtu, size, reps)
        if mtu == 1500:
            for name, values in multisock_rows(mtu, size, reps, offload=False).items():
                rows[f"{name} (no offload)"] = values
        rows[f"kernel <- kernel over veth (MTU {mtu})"] = veth_row(mtu, size, reps)
        for name, values in rows.items():
            print(f"MTU {mtu:5d}  {name:38s} min {min(values):8.1f}  median "
                  f"{statistics.median(values):8.1f}")


if __name__ == "__main__":
    main()
