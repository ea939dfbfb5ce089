"""gevent.server.StreamServer echo over multisock with N concurrent clients made by
gevent.socket.create_connection inside a gevent.pool.Pool; then N idle connections
held open at once; then a clean shutdown with no greenlet left alive."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup(os.environ.get("ORDER", "gevent-first"))

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402
import gevent.server  # noqa: E402
import gevent.socket  # noqa: E402

N_ECHO = int(os.environ.get("N_ECHO", "500"))
N_IDLE = int(os.environ.get("N_IDLE", "1000"))
ROUNDS = 3

handlers = {"active": 0, "max_active": 0, "done": 0}
all_open = gevent.event.Event()


def echo(sock: object, address: object) -> None:
    handlers["active"] += 1
    handlers["max_active"] = max(handlers["max_active"], handlers["active"])
    try:
        while True:
            data = sock.recv(65536)  # type: ignore[attr-defined]
            if not data:
                return
            sock.sendall(data)  # type: ignore[attr-defined]
    finally:
        handlers["active"] -= 1
        handlers["done"] += 1


server = gevent.server.StreamServer(("127.0.0.1", 0), echo, spawn=gevent.pool.Pool(N_IDLE + 50),
                                    backlog=1024)
server.start()
address = server.address


def client(i: int) -> bool:
    sock = gevent.socket.create_connection(address, timeout=60)
    try:
        for r in range(ROUNDS):
            message = f"client {i} round {r} ".encode() * 50
            sock.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = sock.recv(65536)
                if not chunk:
                    return False
                got += chunk
            if got != message:
                return False
        return True
    finally:
        sock.close()


ticker = common.Ticker()
slices = common.SliceMeter()
driver_meter = common.DriverCallbackMeter()
t0 = time.monotonic()
pool = gevent.pool.Pool(N_ECHO)
results = pool.map(client, range(N_ECHO))
echo_elapsed = time.monotonic() - t0
echo_max_active = handlers["max_active"]
echo_slice, echo_gap = slices.longest, ticker.max_gap

# N_IDLE connections open at once, each with a handler parked in recv()
t0 = time.monotonic()
idle = [gevent.socket.create_connection(address, timeout=60) for _ in range(N_IDLE)]
deadline = time.monotonic() + 60
while handlers["active"] < N_IDLE and time.monotonic() < deadline:
    gevent.sleep(0.05)
idle_active = handlers["active"]
connect_elapsed = time.monotonic() - t0
# all idle: the hub must stay responsive (measured over this phase alone; the loops
# below and above are this script's own non-yielding work, as they would be on the kernel)
slices.longest = ticker.max_gap = 0.0
gevent.sleep(1.0)
idle_slice, idle_gap = slices.longest, ticker.max_gap
# every idle connection still works
for i, sock in enumerate(idle):
    sock.sendall(b"ping %d" % i)
idle_ok = sum(1 for i, sock in enumerate(idle) if sock.recv(100) == b"ping %d" % i)
for sock in idle:
    sock.close()
deadline = time.monotonic() + 30
while handlers["active"] and time.monotonic() < deadline:
    gevent.sleep(0.05)
slices.stop()
ticker.stop()
server.stop(timeout=5)
leaked = common.leaked_greenlets()

from multisock.runtime import default_host  # noqa: E402

tcp = default_host().ip.tcp
common.report(kind=common.network_kind(), echo_ok=sum(results), n_echo=N_ECHO,
              echo_elapsed=round(echo_elapsed, 3), echo_max_active=echo_max_active,
              n_idle=N_IDLE, idle_active=idle_active, idle_ok=idle_ok,
              connect_elapsed=round(connect_elapsed, 3), handlers_left=handlers["active"],
              echo_tick_max_gap=round(echo_gap, 4), echo_longest_slice=round(echo_slice, 4),
              idle_tick_max_gap=round(idle_gap, 4), idle_longest_slice=round(idle_slice, 4),
              tick_max_gap=round(ticker.max_gap, 4), longest_slice=round(slices.longest, 4),
              driver_callback_max=round(driver_meter.longest, 4), leaked=leaked,
              established_left=sum(1 for c in tcp.connections() if c["state"] == "ESTABLISHED"))
