"""A threaded web server with routes and keep-alive, written against the plain stdlib.

Run it plainly (kernel sockets) or over multisock::

    python examples/web_server.py 8000
    python -m multisock run --delay 20ms examples/web_server.py 8000   # in one process with a client

With ``--self-test`` it starts, fetches its own routes with http.client and exits,
which is how to see it work under ``python -m multisock run``.
"""

from __future__ import annotations

import http.client
import http.server
import json
import sys
import threading

ROUTES = {
    "/": (b"<h1>hello</h1>", "text/html"),
    "/health": (b"ok", "text/plain"),
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:  # noqa: N802 - stdlib spelling
        if self.path == "/whoami":
            body = json.dumps({"client": self.client_address[0]}).encode()
            kind = "application/json"
        elif self.path in ROUTES:
            body, kind = ROUTES[self.path]
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def self_test(port: int) -> int:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    for path in ("/", "/health", "/whoami", "/missing"):
        conn.request("GET", path)
        response = conn.getresponse()
        print(path, response.status, response.read()[:60])
    conn.close()
    server.shutdown()
    return 0


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0
    if "--self-test" in sys.argv:
        sys.exit(self_test(port))
    http.server.ThreadingHTTPServer(("", port or 8000), Handler).serve_forever()
