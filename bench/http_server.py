"""The HTTP server every HTTP benchmark talks to (``bench.worker`` and ``bench.bench_gevent``).

One place, so that the threads/gevent rows and the ``requests.Session`` row measure the same
server. ``http.server`` is imported inside :func:`start`, after the caller has patched
(multisock and/or gevent): the benchmark is of unmodified code running on whatever
``socket`` the process has at that point.
"""

from __future__ import annotations

import time
from typing import Any

BODY = b"x" * 1024  # the 1 KiB of every HTTP row


def start(delay: float = 0.0) -> tuple[Any, str]:
    """Serve ``BODY`` over HTTP/1.1 keep-alive from a ``ThreadingHTTPServer`` on 127.0.0.1.

    ``delay``: seconds each request sleeps in the handler (a greenlet switch under gevent).
    Returns the server (the caller calls ``shutdown()`` and ``server_close()``) and its URL.
    """
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body are two writes: without this, Nagle + the client's delayed
        # ACK cap both stacks at ~25 requests/s, which measures the timers, not the stack
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if delay:
                time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"
