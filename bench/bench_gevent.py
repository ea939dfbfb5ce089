"""The same HTTP workload on the threads backend and on gevent, multisock beside the kernel.

``python bench/bench_gevent.py [--requests N] [--clients M] [--delay S] [--reps R]``

One program, run four ways in fresh interpreters (patching is per process): an
``http.server.ThreadingHTTPServer`` (HTTP/1.1 keep-alive, 1 KiB body, optional handler
sleep) and M client threads, each with a ``requests.Session``, sharing N GETs. Under
``gevent.monkey.patch_all()`` the same threads are greenlets. Stacks: multisock
(``multisock.monkey.patch_all()``; with gevent the network gets the gevent backend) and
the kernel on loopback, measured in the same run so the ratio means something.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.rows import row

ROOT = Path(__file__).resolve().parent.parent
MODES = (("threads", "multisock"), ("threads", "kernel"), ("gevent", "multisock"),
         ("gevent", "kernel"))


def worker(backend: str, stack: str, n: int, clients: int, delay: float) -> dict[str, Any]:
    """Runs inside the fresh interpreter: patch as asked, serve, fetch, time."""
    if backend == "gevent":
        from gevent import monkey

        monkey.patch_all()
    if stack == "multisock":
        from multisock.monkey import patch_all

        patch_all()
    import threading

    import requests

    from bench import http_server

    server, url = http_server.start(delay)
    body = http_server.BODY
    shares = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    failures: list[BaseException] = []
    ready = threading.Barrier(clients + 1)

    def client(count: int) -> None:
        try:
            with requests.Session() as session:
                session.get(url).content  # noqa: B018 - connection set up before timing
                ready.wait()
                for _ in range(count):
                    if len(session.get(url).content) != len(body):
                        raise RuntimeError("short body")
        except threading.BrokenBarrierError:
            pass  # another client failed: that one is reported
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            failures.append(exc)
            ready.abort()

    threads = [threading.Thread(target=client, args=(c,)) for c in shares]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        for t in threads:
            t.join()
        raise RuntimeError(f"a client failed while connecting: {failures[0]!r}") from None
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    server.shutdown()
    server.server_close()
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed: {failures[0]!r}")
    kind = "kernel"
    if stack == "multisock":
        from multisock.runtime import default_host

        kind = default_host().driver.backend
    return {"rate": n / elapsed, "driver": kind}


def measure(backend: str, stack: str, n: int, clients: int, delay: float) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MULTISOCK", None)
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_gevent", "--worker", backend, stack, str(n),
         str(clients), str(delay)], cwd=ROOT, capture_output=True, text=True, timeout=1800,
        env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{backend}/{stack} failed: {result.stderr[-2000:]}")
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    expected = backend if stack == "multisock" else "kernel"
    if answer["driver"] != expected:
        raise RuntimeError(f"{backend}/{stack} ran on {answer['driver']}")
    return float(answer["rate"])


def run(n: int, clients: int, delay: float, reps: int) -> dict[tuple[str, str], list[float]]:
    """Repetitions interleave the four modes so that load drifts hit them alike."""
    rates: dict[tuple[str, str], list[float]] = {mode: [] for mode in MODES}
    for _ in range(reps):
        for mode in MODES:
            rates[mode].append(measure(*mode, n, clients, delay))
    return rates


def rows(n: int, clients: int, delay: float, reps: int) -> list[dict[str, Any]]:
    """Rows in ``python -m bench``'s shape: per backend, multisock beside the kernel."""
    rates = run(n, clients, delay, reps)
    return [row(f"HTTP GET 1 KiB, {clients} clients, {backend}", "req/s",
                rates[(backend, "multisock")], rates[(backend, "kernel")], True,
                requests=n, handler_delay_s=delay)
            for backend in ("threads", "gevent")]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        backend, stack, n, clients, delay = sys.argv[2:7]
        print(json.dumps(worker(backend, stack, int(n), int(clients), float(delay))))
        return
    parser = argparse.ArgumentParser(prog="python bench/bench_gevent.py")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.0, help="handler sleep, seconds")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.requests} GETs, {args.clients} concurrent clients, handler sleep "
          f"{args.delay}s, {args.reps} reps (req/s, min / median)")
    for r in rows(args.requests, args.clients, args.delay, args.reps):
        print(f"{r['scenario']:<40} multisock {r['multisock_min']:8.0f} / "
              f"{r['multisock_median']:8.0f}   kernel {r['kernel_min']:8.0f} / "
              f"{r['kernel_median']:8.0f}   ratio {r['ratio_median']:.2f}")


if __name__ == "__main__":
    main()
