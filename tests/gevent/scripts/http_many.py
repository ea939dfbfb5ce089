"""N greenlets each GET (requests) from a gevent.pywsgi.WSGIServer whose handler sleeps
0.2 s cooperatively, all over multisock: every response right, total time far below
serial, the hub's longest stall measured two ways."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup(os.environ.get("ORDER", "gevent-first"))

import gevent  # noqa: E402
import gevent.pool  # noqa: E402
import gevent.pywsgi  # noqa: E402
import requests  # noqa: E402

N = int(os.environ.get("N", "500"))
DELAY = 0.2


in_handler = 0
max_in_handler = 0


def app(environ: dict, start_response: object) -> list[bytes]:
    global in_handler, max_in_handler
    in_handler += 1
    max_in_handler = max(max_in_handler, in_handler)
    try:
        gevent.sleep(DELAY)
    finally:
        in_handler -= 1
    body = f"hello {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),  # type: ignore[operator]
                              ("Content-Length", str(len(body)))])
    return [body]


server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None,
                                  spawn=gevent.pool.Pool(N + 10))
server.max_accept = int(os.environ.get("MAX_ACCEPT", "100"))
server.start()
port = server.address[1]


def get(i: int) -> str:
    with requests.Session() as session:
        return session.get(f"http://127.0.0.1:{port}/{i}", timeout=60).text


serial_n = 5
t0 = time.monotonic()
for i in range(serial_n):
    assert get(i) == f"hello /{i}"
serial_one = (time.monotonic() - t0) / serial_n
max_in_handler = 0

ticker = common.Ticker()
slices = common.SliceMeter()
driver_meter = common.DriverCallbackMeter()
t0 = time.monotonic()
greenlets = [gevent.spawn(get, i) for i in range(N)]
gevent.joinall(greenlets, timeout=120)
elapsed = time.monotonic() - t0
slices.stop()
ticker.stop()
ok = sum(1 for i, g in enumerate(greenlets) if g.successful() and g.value == f"hello /{i}")
errors = [repr(g.exception) for g in greenlets if not g.successful()][:5]

server.stop(timeout=5)
leaked = common.leaked_greenlets()
common.report(kind=common.network_kind(), n=N, ok=ok, errors=errors,
              elapsed=round(elapsed, 3), max_in_handler=max_in_handler, serial_one=round(serial_one, 4),
              serial_estimate=round(serial_one * N, 2), tick_max_gap=round(ticker.max_gap, 4),
              ticks=ticker.ticks, longest_slice=round(slices.longest, 4),
              driver_callbacks=driver_meter.calls,
              driver_callback_max=round(driver_meter.longest, 4), leaked=leaked)
