"""``python -m bench [--quick] [--json FILE]``: the benchmark table, kernel ratios, JSON.

Every row has the multisock figure, the kernel's measured in the same run where a kernel
counterpart exists, and the ratio of medians; min and median over repetitions. Scenarios
(issue 9): TCP bulk, TCP RTT, connection rate, HTTP, UDP datagrams/s (one way, echo),
scale (idle connections, parallel flows), footprint, goodput under loss; plus per-datagram
and checksum micro rows. multisock runs on two hosts joined by the default (ideal) link;
the kernel on loopback. TUN rows are added when run as root (not in ``--quick``).
``--quick`` uses small sizes and only proves that everything runs (CI).

``--compiled PYTHON`` sets the two builds side by side: PYTHON is the interpreter of an
environment where the compiled build is installed (``MULTISOCK_COMPILE=1 pip install .``,
e.g. ``.venv-compiled/bin/python``). Whole passes of the chosen scenarios alternate,
``--rounds`` times, between this interpreter's build and PYTHON's, each pass in a process of
its own with its kernel figures; the table has both builds' columns and ratios, the kernel
column pooling both passes' kernel figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import multisock
from bench import bench_conn, bench_stack, bench_tcp
from bench.rows import row
from multisock.wire.checksum import internet_checksum

ROOT = Path(__file__).resolve().parent.parent

# sizes per mode: the full ones are the issue's
FULL = {"reps": 5, "bulk": 256 << 20, "rtt": 20000, "conns": 5000, "http": 2000,
        "udp": 50000, "echo": 10000, "idle": 10000, "flows": 100, "flow_s": 3.0}
QUICK = {"reps": 2, "bulk": 8 << 20, "rtt": 300, "conns": 200, "http": 100,
         "udp": 2000, "echo": 300, "idle": 300, "flows": 4, "flow_s": 0.2}


def _worker(*args: Any, pycache: str | None = None) -> dict[str, Any]:
    """Run ``bench.worker`` in a fresh interpreter and return its JSON answer.

    ``pycache``: write and use bytecode caches there, as an installed package has them
    (the suite's environment sets PYTHONDONTWRITEBYTECODE; compiling at import time
    costs RSS that no installed program pays).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    result = subprocess.run([sys.executable, "-m", "bench.worker", *map(str, args)],
                            cwd=ROOT, capture_output=True, text=True, timeout=1800,
                            env=env, check=True)
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def run(quick: bool, only: set[str] | None = None,
        reps_override: int | None = None, namespaces: bool = True) -> list[dict[str, Any]]:
    size = QUICK if quick else FULL
    reps = reps_override or size["reps"]
    rows = []

    def wanted(key: str) -> bool:
        return only is None or key in only

    net = multisock.Network(seed=1)
    a, b = net.add_host("a", "10.0.0.1/24"), net.add_host("b", "10.0.0.2/24")
    net.link(a, b)
    ms_sides = ((b.socket, "10.0.0.2"), (a.socket, "10.0.0.1"))
    k_sides = ((socket.socket, "127.0.0.1"), (socket.socket, "127.0.0.1"))

    def both(func: Any, *args: Any) -> tuple[list[Any], list[Any]]:
        """Alternate multisock and kernel repetitions, so load drifts hit both alike."""
        ours, kernel = [], []
        for _ in range(reps):
            ours.append(func(*ms_sides, *args))
            kernel.append(func(*k_sides, *args))
        return ours, kernel

    # TCP over a connected pair, multisock's (on ``net``) and the kernel's, alternating
    for key, func, name, unit, higher, extra in (
            ("bulk", bench_tcp.bulk, "TCP bulk, in-process link", "Gbit/s", True, "bytes"),
            ("rtt", bench_tcp.rtt, "TCP 1-byte RTT (TCP_NODELAY)", "µs", False, "round_trips"),
            ("rtt", bench_tcp.rtt_one_cpu, "TCP 1-byte RTT, both threads on one CPU", "µs",
             False, "round_trips")):
        if not wanted(key):
            continue
        ours, kernel = [], []
        for _ in range(reps):
            ours.append(func(lambda: bench_tcp._pair_multisock(net), size[key]))
            kernel.append(func(bench_tcp._pair_kernel, size[key]))
        rows.append(row(name, unit, ours, kernel, higher, **{extra: size[key]}))
    if wanted("bridged"):  # bridged fd mode: the same rows with bytes through a kernel pair
        for func, name, unit, higher, key, extra in (
                (bench_tcp.bulk, "TCP bulk, bridged fd mode", "Gbit/s", True, "bulk", "bytes"),
                (bench_tcp.rtt, "TCP 1-byte RTT, bridged fd mode", "µs", False, "rtt",
                 "round_trips")):
            ours, kernel = [], []
            for _ in range(reps):
                ours.append(func(lambda: bench_tcp._pair_multisock_bridged(net), size[key]))
                kernel.append(func(bench_tcp._pair_kernel, size[key]))
            rows.append(row(name, unit, ours, kernel, higher, **{extra: size[key]}))
    if wanted("conn"):
        ours, kernel = both(bench_conn.connection_rate, size["conns"])
        rows.append(row("TCP connect+accept+close", "conn/s", ours, kernel, True,
                        connections=size["conns"]))
    if wanted("udp"):
        ours, kernel = both(bench_conn.udp_one_way, size["udp"])
        rows.append(row("UDP 1 KiB one way", "dgram/s", ours, kernel, True,
                        datagrams=size["udp"]))
        ours, kernel = both(bench_conn.udp_echo, size["echo"])
        rows.append(row("UDP 1 KiB echo", "rt/s", ours, kernel, True, round_trips=size["echo"]))
    if wanted("flows"):
        ours_pairs, kernel_pairs = both(bench_conn.parallel_bulk, size["flows"], size["flow_s"])
        rows.append(row(f"TCP {size['flows']} parallel flows, aggregate", "Gbit/s",
                        [x for x, _ in ours_pairs], [x for x, _ in kernel_pairs], True,
                        seconds=size["flow_s"]))
        rows.append(row(f"TCP {size['flows']} parallel flows, Jain index", "index",
                        [j for _, j in ours_pairs], [j for _, j in kernel_pairs], True))
    if wanted("micro"):
        udp = bench_stack.measure(reps=reps, n=300 if quick else 2000)
        names = list(udp)
        rows.append(row("UDP 1 KiB send+recv, one thread", "µs", udp[names[0]],
                        udp[names[2]], False))
        rows.append(row("ICMP echo, host to host", "µs", udp[names[1]], None, False))
    net.close()

    if wanted("gateway"):
        rows += gateway_rows(size, rows)

    if wanted("http"):
        ours, kernel = [], []
        for _ in range(1 if quick else 3):
            ours += _worker("http", "multisock", size["http"], 1 if quick else 2)["rates"]
            kernel += _worker("http", "kernel", size["http"], 1 if quick else 2)["rates"]
        rows.append(row("HTTP GET 1 KiB, requests.Session", "req/s", ours, kernel, True,
                        requests=size["http"]))
    if wanted("idle"):
        ours = [_worker("idle", "multisock", size["idle"])["bytes_per_connection"] / 1024
                for _ in range(1 if quick else 2)]
        rows.append(row(f"RSS per idle connection, both ends ({size['idle']})", "KiB", ours,
                        None, False, note="client and server socket both live in the process"))
        rows.append(row("RSS per idle connection, one end", "KiB", [x / 2 for x in ours], None,
                        False, note="what a server pays per client; target <= 4 KiB"))
    if wanted("footprint"):
        with tempfile.TemporaryDirectory() as pycache:
            _worker("footprint", pycache=pycache)  # compiles and caches the bytecode
            ours = [_worker("footprint", pycache=pycache)["bytes"] / (1 << 20)
                    for _ in range(1 if quick else 3)]
        rows.append(row("footprint: import + patch_all + host", "MiB", ours, None, False,
                        note="bytecode cached, as installed; target <= 3 MiB"))
    if wanted("loss"):  # the kernel's TCP crosses the same impaired link (root: namespaces)
        from bench import bench_loss

        rows += bench_loss.rows(quick, namespaces)
    if wanted("routers"):  # the simulation's forwarding speed: a chain of 10 routers
        from bench import bench_routers

        rate = [bench_routers.packets_per_second(size["udp"] // 5) for _ in range(reps)]
        rows.append(row("simulated packets through 10 routers", "pkt/s", rate, None, True,
                        note="UDP datagrams over a chain of 10 routers; each link traversal "
                             "counts"))
    if wanted("tun") and os.geteuid() == 0:
        rows += tun_rows(quick)
    if wanted("micro"):
        data = os.urandom(65536)
        times = []
        for _ in range(reps * 20):
            start = time.perf_counter_ns()
            internet_checksum(data)
            times.append((time.perf_counter_ns() - start) / 1000)
        rows.append(row("internet checksum, 64 KiB", "µs", times, None, False))
    if wanted("costs"):  # hand-off, wake-up path, socket setup (bench/bench_costs.py)
        from bench import bench_costs

        rows += bench_costs.rows(quick, reps)
    if wanted("security"):  # the firewall's cost, against no firewall in the same run
        from bench import bench_security

        cpu: list[tuple[float, float]] = []
        plain, guarded, checked = bench_security.measure(size["bulk"] // 2, max(reps, 3), cpu)
        rows.append(row("TCP bulk, no firewall", "Gbit/s", plain, None, True))
        walled = row(f"TCP bulk, conntrack + {checked} rules", "Gbit/s", guarded, None, True,
                     note="ratio: to the no-firewall row, same run; target >= 0.70")
        walled["ratio_median"] = walled["multisock_median"] / rows[-1]["multisock_median"]
        rows.append(walled)
        per_cpu = row(f"TCP bulk per CPU-second, conntrack + {checked} rules", "Gbit/cpu-s",
                      [w for _, w in cpu], None, True,
                      note="ratio: to no firewall per CPU-second (steadier under load)")
        per_cpu["ratio_median"] = per_cpu["multisock_median"] / row(
            "", "", [b for b, _ in cpu], None, True)["multisock_median"]
        rows.append(per_cpu)
    if wanted("sim"):  # virtual time (multisock.sim): one run per repetition
        from bench import bench_sim

        idle = [bench_sim.idle_rate(600.0 if quick else 3600.0) for _ in range(1 if quick else 3)]
        rows.append(row("sim: idle-heavy, 50 conns, keep-alive every 30 s", "sim s/wall s",
                        idle, None, True, simulated=600.0 if quick else 3600.0))
        busy = [bench_sim.busy_rate(200 if quick else 5000) for _ in range(1 if quick else 3)]
        rows.append(row("sim: busy echo, 100 B messages, 1 ms link", "pkt/wall s",
                        [rate for rate, _ in busy], None, True, **busy[0][1]))
    if wanted("gevent"):  # the HTTP workload on the threads backend and on gevent's hub
        from bench import bench_gevent

        rows += bench_gevent.rows(size["http"], 10 if quick else 50, 0.0, 1 if quick else 3)
    return rows


def gateway_rows(size: dict[str, Any], done: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Through the host gateway (docs/gateway.md) against kernel <-> kernel, same run; the
    bulk rows also say what share of the in-process bulk figure they reach (target 50 %)."""
    from bench import bench_gateway

    net, app = bench_gateway.network()
    out = []
    in_process = next((r["multisock_median"] for r in done
                       if r["scenario"] == "TCP bulk, in-process link"), None)
    for name, pair in (("kernel -> gateway -> multisock", bench_gateway.pair_from_kernel),
                       ("multisock -> gateway -> kernel", bench_gateway.pair_to_kernel)):
        ours, kernel = [], []
        for _ in range(size["reps"]):
            ours.append(bench_tcp.bulk(lambda p=pair: p(app), size["bulk"]))  # type: ignore[misc]
            kernel.append(bench_tcp.bulk(bench_tcp._pair_kernel, size["bulk"]))
        extra: dict[str, Any] = {"bytes": size["bulk"]}
        if in_process:
            extra["share_of_in_process_bulk"] = statistics.median(ours) / in_process
        out.append(row(f"TCP bulk, {name}", "Gbit/s", ours, kernel, True, **extra))
    ours, kernel = [], []
    for _ in range(size["reps"]):
        ours.append(bench_gateway.connection_rate(app, size["conns"]))
        kernel.append(bench_gateway.connection_rate(None, size["conns"]))
    out.append(row("TCP connect+accept+close through the gateway", "conn/s", ours, kernel, True,
                   connections=size["conns"]))
    net.close()
    return out


def tun_rows(quick: bool) -> list[dict[str, Any]]:
    """Scenario 9 (root only): kernel <-> multisock over a TUN device inside a network
    namespace, HTTP downloads both ways at MTU 1500 and 65535, and ping; the kernel column
    is kernel <-> kernel over a veth pair at the same MTU (``bench/bench_tun.py``)."""
    from bench import bench_tun

    size, reps = ((8 << 20), 1) if quick else ((64 << 20), 3)
    rows = []
    for mtu in (1500, 65535):
        ours = bench_tun.multisock_rows(mtu, size, reps)
        veth = bench_tun.veth_row(mtu, size, reps)
        plain = bench_tun.multisock_rows(mtu, size, reps, offload=False) if mtu == 1500 else None
        for key, label in (("kernel <- multisock", "kernel downloads from multisock"),
                           ("multisock <- kernel", "multisock downloads from kernel")):
            rows.append(row(f"TUN MTU {mtu}: {label}", "Mbit/s", ours[key], veth, True,
                            kernel_note="kernel <-> kernel over veth, same MTU"))
            if plain is not None:  # the link without its virtio-net offloads, for comparison
                rows.append(row(f"TUN MTU {mtu} without offloads: {label}", "Mbit/s",
                                plain[key], veth, True,
                                kernel_note="kernel <-> kernel over veth, same MTU"))
        rows.append(row(f"TUN MTU {mtu}: ping multisock -> kernel", "ms",
                        ours["ping RTT multisock->kernel (ms)"], None, False))
    return rows


def _num(x: float) -> str:
    """About three significant digits, thousands separated, never in exponent form."""
    for limit, spec in ((1000, ",.0f"), (100, ".0f"), (10, ".1f"), (1, ".2f")):
        if abs(x) >= limit:
            return format(x, spec)
    return f"{x:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: multisock and kernel as min/median, ratio of medians."""
    lines = ["| scenario | unit | multisock min / median | kernel min / median | ratio |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        kernel = (f"{_num(r['kernel_min'])} / {_num(r['kernel_median'])}"
                  if "kernel_median" in r else r.get("kernel_missing", "-"))
        ratio = f"{r['ratio_median']:.2f}" if "ratio_median" in r else "-"
        lines.append(f"| {r['scenario']} | {r['unit']} | {_num(r['multisock_min'])} / "
                     f"{_num(r['multisock_median'])} | {kernel} | {ratio} |")
    return "\n".join(lines)


def _pass(python: str, outside: bool, json_path: str, argv: list[str]) -> list[dict[str, Any]]:
    """One pass of ``python -m bench`` in a process of its own; its rows.

    ``outside``: run from a copy of ``bench/`` alone, so that the checkout's ``multisock/``
    (the pure source) does not shadow the build installed for ``python``."""
    with tempfile.TemporaryDirectory() as where:
        cwd = str(ROOT)
        env = dict(os.environ)
        if outside:
            shutil.copytree(ROOT / "bench", Path(where) / "bench",
                            ignore=shutil.ignore_patterns("__pycache__"))
            cwd = where
            env.pop("PYTHONPATH", None)
        subprocess.run([python, "-m", "bench", "--json", json_path, *argv], cwd=cwd, env=env,
                       check=True, stdout=sys.stderr)
    with open(json_path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    rows: list[dict[str, Any]] = data["rows"]
    if bool(data.get("compiled")) != outside:
        raise SystemExit(f"{python}: expected the {'compiled' if outside else 'pure'} build, "
                         f"found multisock.COMPILED={data.get('compiled')}")
    return rows


def side_by_side(compiled_python: str, rounds: int, argv: list[str]) -> list[dict[str, Any]]:
    """Both builds, whole passes alternated ``rounds`` times; one merged row per scenario."""
    merged: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for build, python in (("pure", sys.executable), ("compiled", compiled_python)):
                print(f"round {i + 1}/{rounds}: {build} build", file=sys.stderr)
                for r in _pass(python, build == "compiled", f"{tmp}/{build}{i}.json", argv):
                    m = merged.setdefault(r["scenario"], {
                        "scenario": r["scenario"], "unit": r["unit"],
                        "higher_is_better": r["higher_is_better"],
                        "pure": [], "compiled": [], "kernel": []})
                    m[build] += r["multisock"]
                    m["kernel"] += r.get("kernel", [])
    rows = []
    for m in merged.values():
        for side in ("pure", "compiled", "kernel"):
            if m[side]:
                m[f"{side}_min"] = min(m[side])
                m[f"{side}_median"] = statistics.median(m[side])
        for side in ("pure", "compiled"):
            if m["kernel"] and m[side]:
                m[f"ratio_{side}"] = m[f"{side}_median"] / m["kernel_median"]
        rows.append(m)
    return rows


def table_side_by_side(rows: list[dict[str, Any]]) -> str:
    """Markdown table: pure, compiled and kernel as min/median, each build's ratio."""
    lines = ["| scenario | unit | pure min / median | compiled min / median | "
             "kernel min / median | pure ratio | compiled ratio |",
             "|---|---|---:|---:|---:|---:|---:|"]

    def cell(r: dict[str, Any], side: str) -> str:
        if f"{side}_median" not in r:
            return "-"
        return f"{_num(r[f'{side}_min'])} / {_num(r[f'{side}_median'])}"

    for r in rows:
        ratios = [f"{r[f'ratio_{s}']:.2f}" if f"ratio_{s}" in r else "-"
                  for s in ("pure", "compiled")]
        lines.append(f"| {r['scenario']} | {r['unit']} | {cell(r, 'pure')} | "
                     f"{cell(r, 'compiled')} | {cell(r, 'kernel')} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes: proves it runs")
    parser.add_argument("--json", default="bench-results.json", help="where to write the rows")
    parser.add_argument("--only", help="comma-separated subset: bulk,rtt,conn,udp,flows,micro,"
                        "http,idle,footprint,loss,gevent,gateway,security,sim,routers,bridged,"
                        "costs,tun (tun: root only)")
    parser.add_argument("--no-tun", action="store_true", help="skip the TUN rows even as root")
    parser.add_argument("--reps", type=int, help="repetitions per scenario (default: the mode's)")
    parser.add_argument("--compiled", metavar="PYTHON",
                        help="also the compiled build installed for PYTHON, side by side")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --compiled: passes of each build, alternated (default 3)")
    args = parser.parse_args()
    if args.compiled:
        argv = [a for a in ("--quick",) if args.quick]
        argv += [f"--only={args.only}"] if args.only else []
        argv += ["--no-tun"] if args.no_tun else []
        argv += [f"--reps={args.reps}"] if args.reps else []
        rows = side_by_side(os.path.abspath(args.compiled), args.rounds, argv)
        print(table_side_by_side(rows))
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"quick": args.quick, "python": sys.version, "side_by_side": True,
                       "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")
        return
    only = set(args.only.split(",")) if args.only else None
    if only is None and (args.quick or args.no_tun):
        only = {"bulk", "rtt", "conn", "udp", "flows", "micro", "http", "idle", "footprint",
                "loss", "gevent", "gateway", "security",
                "sim", "routers", "bridged", "costs"}  # quick mode (CI) never builds namespaces
    rows = run(args.quick, only, args.reps,  # the loss rows' kernel side: namespaces
               namespaces=not args.no_tun and not (args.quick and args.only is None))
    print(table(rows))
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"quick": args.quick, "python": sys.version, "compiled": multisock.COMPILED,
                   "rows": rows}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
