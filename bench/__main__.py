"""``python -m bench [--quick] [--json FILE]``: the benchmark table, kernel ratios, JSON.

Runs the scenarios that exist so far (TCP bulk, TCP RTT, UDP datagram, ICMP ping,
goodput under loss, checksum); each row has the multisock figure, the kernel's
from the same run where one exists, and the ratio. TUN rows need root: run
``python bench/bench_tun.py`` for them. ``--quick`` only proves that everything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import multisock
from bench import bench_stack, bench_tcp
from multisock.wire.checksum import internet_checksum


def _row(name: str, unit: str, ours: list[float], kernel: list[float] | None,
         higher_is_better: bool) -> dict[str, Any]:
    best = max if higher_is_better else min
    row: dict[str, Any] = {"scenario": name, "unit": unit, "multisock_best": best(ours),
                           "multisock_median": statistics.median(ours)}
    if kernel:
        row["kernel_best"] = best(kernel)
        row["kernel_median"] = statistics.median(kernel)
        row["ratio_median"] = row["multisock_median"] / row["kernel_median"]
    return row


def run(quick: bool) -> list[dict[str, Any]]:
    reps, size, rounds = (2, 8 << 20, 300) if quick else (5, 256 << 20, 20000)
    rows = []
    net = multisock.Network(seed=1)
    net.link(net.add_host("a", "10.0.0.1/24"), net.add_host("b", "10.0.0.2/24"))
    ours = [bench_tcp.bulk(lambda: bench_tcp._pair_multisock(net), size) for _ in range(reps)]
    kernel = [bench_tcp.bulk(bench_tcp._pair_kernel, size) for _ in range(reps)]
    rows.append(_row("TCP bulk, in-process link", "Gbit/s", ours, kernel, True))
    ours = [bench_tcp.rtt(lambda: bench_tcp._pair_multisock(net), rounds) for _ in range(reps)]
    kernel = [bench_tcp.rtt(bench_tcp._pair_kernel, rounds) for _ in range(reps)]
    rows.append(_row("TCP 1-byte RTT (TCP_NODELAY)", "µs", ours, kernel, False))
    net.close()
    udp = bench_stack.measure(reps=reps, n=300 if quick else 2000)
    names = list(udp)
    rows.append(_row("UDP 1 KiB datagram, host to host", "µs", [udp[names[0]][1]],
                     [udp[names[2]][1]], False))
    rows.append(_row("ICMP echo, host to host", "µs", [udp[names[1]][1]], None, False))
    goodput, mathis = bench_tcp.lossy_goodput((1 if quick else 32) << 20)
    row = _row("TCP goodput, 1 % loss, 20 ms RTT", "Mbit/s", [goodput], [mathis], True)
    row["kernel_note"] = "the column holds the Mathis estimate, not a kernel run"
    rows.append(row)
    data = os.urandom(65536)
    times = []
    for _ in range(reps * 20):
        start = time.perf_counter_ns()
        internet_checksum(data)
        times.append((time.perf_counter_ns() - start) / 1000)
    rows.append(_row("internet checksum, 64 KiB", "µs", times, None, False))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes: proves it runs")
    parser.add_argument("--json", default="bench-results.json", help="where to write the rows")
    args = parser.parse_args()
    rows = run(args.quick)
    print(f"{'scenario':38} {'multisock (median)':>20} {'kernel (median)':>18} {'ratio':>7}")
    for r in rows:
        kernel = f"{r['kernel_median']:.2f}" if "kernel_median" in r else "-"
        ratio = f"{r['ratio_median']:.2f}" if "ratio_median" in r else "-"
        print(f"{r['scenario']:38} {r['multisock_median']:14.2f} {r['unit']:5} {kernel:>18} "
              f"{ratio:>7}")
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"quick": args.quick, "rows": rows}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
