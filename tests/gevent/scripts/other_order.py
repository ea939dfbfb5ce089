"""multisock patched first, gevent second: either everything ends up on multisock and
cooperative, or (a network already running on threads) gevent's patch_all fails at
once with an error that says what to do."""

from __future__ import annotations

import os
import sys

import multisock.monkey

multisock.monkey.patch_all()
if os.environ.get("USE_BEFORE") == "1":
    import socket

    socket.socket().close()  # the default network now exists, on the threads backend
import gevent.monkey  # noqa: E402

try:
    gevent.monkey.patch_all()
except RuntimeError as exc:
    print("ERROR", exc)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import gevent  # noqa: E402
import gevent.pywsgi  # noqa: E402
import gevent.socket  # noqa: E402
import requests  # noqa: E402

import multisock  # noqa: E402

assert gevent.socket.socket is multisock.socket.socket
import gevent.local  # noqa: E402

import multisock.runtime  # noqa: E402

assert isinstance(multisock.runtime._local, gevent.local.local)  # use_host per greenlet
server = gevent.pywsgi.WSGIServer(
    ("127.0.0.1", 0), lambda env, start: (gevent.sleep(0.2), start("200 OK", []), [b"ok"])[2],
    log=None)
server.start()
url = f"http://127.0.0.1:{server.address[1]}/"
greenlets = [gevent.spawn(lambda: requests.get(url, timeout=30).text) for _ in range(50)]
gevent.joinall(greenlets, timeout=60)
server.stop()
common.report(kind=common.network_kind(), ok=sum(1 for g in greenlets if g.value == "ok"))
