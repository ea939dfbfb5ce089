"""The costs outside the TCP engine (issue 22): thread hand-off, wake-up path, socket setup.

``python -m bench --only costs``. Every row is multisock next to the kernel's equivalent,
measured alternately in the same run; each repetition measures all rows for both stacks,
and the derived rows (differences) are taken within one repetition, so load drifts between
repetitions do not leak into them. What each row includes:

* **hand-off** - one thread wakes another blocked on the stack's wait primitive: multisock's
  ``WaitQueue`` (what every socket core of the threads backend sleeps on, driver lock held)
  ``notify_all`` → the woken thread back from ``wait`` with the lock re-taken; the kernel's:
  a 1-byte ``send`` on an AF_UNIX socketpair → the thread blocked in ``recv`` on the other
  end returning. A ping-pong: each side stamps, wakes the other and blocks; the figure is the
  median of all wake-ups of one repetition (GIL hand-over included, in both). Plain, and with
  both threads held on one CPU (the plain figure is bimodal: docs/performance.md); on one
  CPU also the process CPU time per wake-up (both threads' loops, the notify, the wait, the
  switch; the kernel's includes its ``send`` and ``recv`` system calls).
* **wake-up path** - process CPU time of the 1-byte TCP round trip (TCP_NODELAY) with both
  ends in one thread (every ``recv`` finds its byte already queued) and in two threads, all
  on one CPU, in alternated chunks. Half their difference is what one direction costs when
  the receiver is blocked: its wait set-up, the notify from the arriving segment, the thread
  switch and the re-check. Minus the hand-off's CPU per wake-up (same repetition), the rest
  is the wake-up path proper (multisock only: the kernel's hand-off figure holds system calls
  its one-thread round trip also pays).
* **socket setup** - ``socket()`` + ``close()``, and ``socket()`` + ``bind()`` +
  ``listen()`` + ``close()``, one thread, CPU µs per cycle; the connect + accept + close
  cycle (``bench_conn.connection_rate``, one thread) in CPU µs, then each of its calls
  timed alone (median call). Client ``close()`` is two segments (FIN, peer's ACK) and
  little else, so half of it estimates one segment's whole path; the cycle (sum of the
  phase medians) less 7 such segments (SYN, SYN-ACK, ACK, FIN, ACK, FIN, ACK) estimates the
  part of a connection that is not segment processing (control blocks, ISN, port search,
  TIME-WAIT, facade objects) - an underestimate, since close()'s own work counts as segment.

CPU time (``time.process_time``: every thread of the process, system time included) is
used where the machine is shared: other processes' time slices fall into wall time, not
into CPU time; the latency rows use medians of single events for the same reason.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import multisock
from bench import bench_conn, bench_tcp
from bench.profile_layers import ping_pong
from bench.rows import row

FULL = {"handoffs": 5000, "rtt": 6000, "chunks": 6, "setup": 3000, "conns": 2000}
QUICK = {"handoffs": 50, "rtt": 60, "chunks": 2, "setup": 30, "conns": 20}


def _cpu_us(func: Callable[[], object], n: int) -> float:
    """Process CPU time (every thread's, system time included) per unit of ``func()``'s
    ``n``: steadier than wall time on a shared machine, where other processes' time slices
    land in the wall figure."""
    start = time.process_time()
    func()
    return (time.process_time() - start) / n * 1e6


def _ping_pong_threads(player: Callable[[int, int, list[int]], None],
                       n: int) -> tuple[float, float]:
    """Run ``player(me, n, samples)`` as two threads (0 starts); the median sample (ns → µs)
    and the process CPU µs per wake-up."""
    samples: list[int] = []
    threads = [threading.Thread(target=player, args=(me, n, samples)) for me in (1, 0)]

    def run() -> None:
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    cpu = _cpu_us(run, 2 * n - 1)
    return statistics.median(samples) / 1000, cpu


def handoff_multisock(driver: Any, n: int) -> tuple[float, float]:
    """``WaitQueue.notify_all`` → the waiter back from ``wait`` with the lock re-taken, as a
    socket core waits (``driver.new_condition()``, on the driver's lock): median µs, and
    process CPU µs per wake-up."""
    lock = driver.lock
    cond = driver.new_condition()
    turn = [0]
    stamp = [0]

    def player(me: int, rounds: int, samples: list[int]) -> None:
        with lock:
            for _ in range(rounds):
                while turn[0] != me:
                    cond.wait()
                woken = time.perf_counter_ns()
                if stamp[0]:
                    samples.append(woken - stamp[0])
                turn[0] = 1 - me
                stamp[0] = time.perf_counter_ns()
                cond.notify_all()

    return _ping_pong_threads(player, n)


def handoff_kernel(n: int) -> tuple[float, float]:
    """A 1-byte ``send`` on a socketpair → ``recv`` returning at the other end, in another
    thread: the same hand-off through the kernel (median µs, process CPU µs per wake-up)."""
    ends = socket.socketpair()
    stamp = [0]

    def player(me: int, rounds: int, samples: list[int]) -> None:
        sock = ends[me]
        for i in range(rounds):
            if me == 1 or i > 0:
                sock.recv(1)
                samples.append(time.perf_counter_ns() - stamp[0])
            stamp[0] = time.perf_counter_ns()
            sock.send(b"!")

    try:
        return _ping_pong_threads(player, n)
    finally:
        for end in ends:
            end.close()


def _one_cpu(func: Callable[[], Any]) -> Any:
    """``func()`` with this thread (and the threads it starts) held on one CPU."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        return func()
    finally:
        os.sched_setaffinity(0, before)


def rtt_cpu(pair: Callable[[], tuple[Any, Any, Any]], rounds: int, threads: int) -> float:
    """Process CPU µs per 1-byte round trip (TCP_NODELAY), both ends driven from this thread
    (``threads=1``: every ``recv`` finds its byte queued) or the echo end in a second thread
    (``threads=2``: every ``recv`` blocks and is woken). Call it on one CPU."""
    listener, client, server = pair()
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ping_pong(client, server, 100)  # warm up

    def echo() -> None:
        for _ in range(rounds):
            server.sendall(server.recv(1))

    def two() -> None:
        thread = threading.Thread(target=echo)
        thread.start()
        for _ in range(rounds):
            client.sendall(b"!")
            client.recv(1)
        thread.join()

    try:
        return _cpu_us(lambda: ping_pong(client, server, rounds) if threads == 1 else two(),
                       rounds)
    finally:
        for s in (client, server, listener):
            s.close()


def _rtt_both(pair: Callable[[], tuple[Any, Any, Any]], rounds: int,
              chunks: int) -> tuple[float, float]:
    """The one-thread and the two-thread round trip's CPU, on one CPU, in alternated chunks
    (a load change on a shared machine then hits both alike); the median chunk of each."""
    one, two = [], []
    for _ in range(chunks):
        one.append(_one_cpu(lambda: rtt_cpu(pair, rounds // chunks, 1)))
        two.append(_one_cpu(lambda: rtt_cpu(pair, rounds // chunks, 2)))
    return statistics.median(one), statistics.median(two)


def socket_close(new: Callable[[int, int], Any], n: int) -> float:
    """CPU µs per ``socket()`` + ``close()``."""
    def loop() -> None:
        for _ in range(n):
            new(socket.AF_INET, socket.SOCK_STREAM).close()

    return _cpu_us(loop, n)


def socket_listen_close(new: Callable[[int, int], Any], address: str, n: int) -> float:
    """CPU µs per ``socket()`` + ``bind((address, 0))`` + ``listen()`` + ``close()``."""
    def loop() -> None:
        for _ in range(n):
            s = new(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((address, 0))
            s.listen()
            s.close()

    return _cpu_us(loop, n)


def connection_cycle(server: tuple[Callable[[int, int], Any], str],
                     client: tuple[Callable[[int, int], Any], str], n: int) -> float:
    """CPU µs per connect + accept + close, one thread (``bench_conn.connection_rate``)."""
    return _cpu_us(lambda: bench_conn.connection_rate(server, client, n), n)


def connection_phases(server: tuple[Callable[[int, int], Any], str],
                      client: tuple[Callable[[int, int], Any], str], n: int) -> dict[str, float]:
    """The connect + accept + close cycle of ``bench_conn.connection_rate`` (client closes
    first), each call timed: the median µs of each phase over ``n`` cycles (a median of
    single calls leaves out the ones another process's time slice landed in)."""
    new, address = server
    listener = new(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((address, 0))
    listener.listen(128)
    target = (address, listener.getsockname()[1])
    clock = time.perf_counter_ns
    phases: dict[str, list[int]] = {k: [] for k in ("socket", "connect", "accept",
                                                    "client_close", "server_close")}
    for _ in range(n):
        t0 = clock()
        c = client[0](socket.AF_INET, socket.SOCK_STREAM)
        t1 = clock()
        c.connect(target)
        t2 = clock()
        s, _ = listener.accept()
        t3 = clock()
        c.close()
        t4 = clock()
        s.close()
        t5 = clock()
        for key, spent in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4),
                               strict=True):
            phases[key].append(spent)
    listener.close()
    return {key: statistics.median(v) / 1000 for key, v in phases.items()}


def rows(quick: bool, reps: int) -> list[dict[str, Any]]:
    size = QUICK if quick else FULL
    net = multisock.Network(seed=1)
    a, b = net.add_host("a", "10.0.0.1/24"), net.add_host("b", "10.0.0.2/24")
    net.link(a, b)
    sides: dict[str, dict[str, Any]] = {
        "multisock": {"pair": lambda: bench_tcp._pair_multisock(net),
                      "handoff": lambda: handoff_multisock(net.driver, size["handoffs"]),
                      "server": (b.socket, "10.0.0.2"), "client": (a.socket, "10.0.0.1")},
        "kernel": {"pair": bench_tcp._pair_kernel,
                   "handoff": lambda: handoff_kernel(size["handoffs"]),
                   "server": (socket.socket, "127.0.0.1"),
                   "client": (socket.socket, "127.0.0.1")}}
    names = {
        "handoff": "hand-off: notify -> woken thread",
        "handoff_cpu": "hand-off: notify -> woken thread, one CPU",
        "handoff_work": "hand-off, one CPU: CPU per wake-up",
        "rtt1": "TCP 1-byte RTT CPU, one thread",
        "rtt2": "TCP 1-byte RTT CPU, two threads on one CPU",
        "wake": "wake-up + hand-off CPU per direction ((2 threads - 1 thread) / 2)",
        "wake_only": "wake-up path beyond the hand-off, CPU per direction",
        "sock": "socket() + close(), CPU",
        "listen": "socket() + bind() + listen() + close(), CPU",
        "cycle": "connect + accept + close, CPU",
        "connect": "connect() (SYN, SYN-ACK, ACK; both control blocks), median call",
        "accept": "accept(), median call",
        "client_close": "client close() (FIN, ACK), median call",
        "server_close": "server close() (FIN, ACK), median call",
        "cycle_rest": "cycle less 7 segments at client close() / 2 each, medians"}
    got: dict[str, dict[str, list[float]]] = {s: {k: [] for k in names} for s in sides}
    for _ in range(reps):
        for name, side in sides.items():
            out = got[name]
            out["handoff"].append(side["handoff"]()[0])
            latency, work = _one_cpu(side["handoff"])
            out["handoff_cpu"].append(latency)
            out["handoff_work"].append(work)
            rtt1, rtt2 = _rtt_both(side["pair"], size["rtt"], size["chunks"])
            out["rtt1"].append(rtt1)
            out["rtt2"].append(rtt2)
            out["wake"].append((rtt2 - rtt1) / 2)
            out["wake_only"].append((rtt2 - rtt1) / 2 - work)
            new, address = side["server"]
            out["sock"].append(socket_close(new, size["setup"]))
            out["listen"].append(socket_listen_close(new, address, size["setup"]))
            out["cycle"].append(connection_cycle(side["server"], side["client"],
                                                 size["conns"]))
            phases = connection_phases(side["server"], side["client"], size["conns"])
            for key in ("connect", "accept", "client_close", "server_close"):
                out[key].append(phases[key])
            out["cycle_rest"].append(sum(phases.values()) - 7 * phases["client_close"] / 2)
    net.close()
    ours, kernel = got["multisock"], got["kernel"]
    out_rows = []
    for key, label in names.items():
        if key == "wake_only":  # the kernel's hand-off includes the send and recv system
            # calls its one-thread round trip already counts: not subtractable
            out_rows.append(row(f"costs: {label}", "µs", ours[key], None, False,
                                kernel_missing="n/a: its hand-off row counts send+recv"))
        else:
            out_rows.append(row(f"costs: {label}", "µs", ours[key], kernel[key], False))
    return out_rows
