"""The driver's own bounds (issue #15 items 1 and 8).

* A drain runs at most ``Driver.drain_budget`` callbacks; the rest continues on the driver
  (its thread, or a gevent hub callback), so an exchange that feeds itself for ever cannot
  keep a socket call from returning - nor the network's lock from other threads.
* The driver thread waits in the kernel's selector, not ``select()``: a device fd numbered
  past FD_SETSIZE (1024) works, and the thread sleeps instead of spinning on the error.

Hangs are detected with generous join bounds; what is asserted is counted, not timed.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import multisock
from multisock.net.network import Network

HANG_BOUND = 60.0  # seconds before a call that should return counts as hung
ROOT = Path(__file__).resolve().parents[2]


class PingPong:
    """Two callbacks that queue each other on the driver for ever (until stopped)."""

    def __init__(self, net: Network) -> None:
        self.driver = net.driver
        self.count = 0
        self.stop = threading.Event()

    def ping(self) -> None:
        self.count += 1
        if not self.stop.is_set():
            self.driver.call_soon(self.pong)

    def pong(self) -> None:
        self.count += 1
        if not self.stop.is_set():
            self.driver.call_soon(self.ping)


def test_endless_callbacks_do_not_keep_socket_calls_from_returning() -> None:
    net = multisock.Network(seed=3)
    a = net.add_host("a", "10.0.0.1/24")
    b = net.add_host("b", "10.0.0.2/24")
    net.link(a, b)
    loop = PingPong(net)
    done: list[str] = []

    def calls() -> None:
        with net.driver.operation():  # the call that starts the loop returns too
            net.driver.call_soon(loop.ping)
        done.append("started")
        r = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.bind(("10.0.0.2", 9000))
        r.settimeout(HANG_BOUND)
        s = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(3):  # other socket calls, from this thread, while the loop runs
            s.sendto(b"%d" % i, ("10.0.0.2", 9000))
            assert r.recv(10) == b"%d" % i
        done.append("socket calls")
        s.close()
        r.close()

    worker = threading.Thread(target=calls, daemon=True)
    worker.start()
    worker.join(HANG_BOUND)
    hung = worker.is_alive()
    loop.stop.set()  # (before the assertion: lets a drain stuck in the loop end)
    worker.join(HANG_BOUND)
    assert not hung, f"a socket call never returned; got as far as {done}"
    assert done == ["started", "socket calls"]
    # the loop went on beside the calls, on the driver, one budget at a time
    assert loop.count > net.driver.drain_budget
    net.close()


def test_the_driver_thread_goes_on_with_what_a_drain_left() -> None:
    """Nobody calls into the network after the loop starts: the driver thread alone
    continues it (woken at once; no timer is involved)."""
    net = multisock.Network(seed=3)
    loop = PingPong(net)
    counted: list[int] = []

    def call() -> None:
        with net.driver.operation():
            net.driver.call_soon(loop.ping)
            counted.append(loop.count)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(HANG_BOUND)
    if caller.is_alive():
        loop.stop.set()  # (lets the stuck drain end)
        pytest.fail("the call that queued the loop never returned")
    deadline = time.monotonic() + HANG_BOUND
    while loop.count < 5 * net.driver.drain_budget and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop.set()
    assert counted == [0]
    assert loop.count >= 5 * net.driver.drain_budget
    net.close()


def test_endless_callbacks_under_the_gevent_driver() -> None:
    """The same with the gevent backend (in its own interpreter): the greenlet's socket
    calls return and another greenlet keeps running while the loop continues in hub
    callbacks."""
    pytest.importorskip("gevent", reason="gevent is not installed")
    script = f"""
import socket, threading, gevent, multisock
import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_driver_bounds import PingPong
net = multisock.Network(seed=3, backend="gevent")
a = net.add_host("a", "10.0.0.1/24"); b = net.add_host("b", "10.0.0.2/24"); net.link(a, b)
loop = PingPong(net)
ticks = []
def ticker():
    for i in range(5):
        gevent.sleep(0.001); ticks.append(i)
def calls():
    with net.driver.operation():
        net.driver.call_soon(loop.ping)
    r = b.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("10.0.0.2", 9000)); r.settimeout(30)
    s = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(3):
        s.sendto(b"x", ("10.0.0.2", 9000)); assert r.recv(10) == b"x"
t = gevent.spawn(ticker); c = gevent.spawn(calls)
gevent.joinall([t, c], raise_error=True)
loop.stop.set(); gevent.sleep(0.01)
print("RESULT", len(ticks), loop.count > net.driver.drain_budget)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MULTISOCK", None)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=HANG_BOUND * 2, env=env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "RESULT 5 True" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_reader_fd_above_fd_setsize_works_and_the_driver_thread_sleeps() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 1200: cannot open an fd past 1024")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200 if hard == resource.RLIM_INFINITY
                                                     else min(hard, 4096), hard))
    filler: list[int] = []
    net = multisock.Network(seed=3)
    try:
        while True:  # fill the numbers below 1024 so that the device fd lands above them
            fd = os.dup(0)
            filler.append(fd)
            if fd > 1030:
                break
        r, w = os.pipe()  # the "TUN device"
        assert r > 1024
        got = threading.Event()

        def readable() -> None:
            os.read(r, 100)
            got.set()

        net.driver.add_reader(r, readable)
        os.write(w, b"packet")
        assert got.wait(HANG_BOUND), "the reader callback never ran"
        # idle: no timers, nothing readable; before, select() raised at once for fd > 1023
        # and the loop spun (~1 s of CPU per second)
        passes = net.driver.passes
        time.sleep(0.5)
        assert net.driver.passes - passes <= 2, net.driver.passes - passes
        got.clear()
        os.write(w, b"again")
        assert got.wait(HANG_BOUND)
        net.driver.remove_reader(r)
        os.close(r)
        os.close(w)
    finally:
        net.close()
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
