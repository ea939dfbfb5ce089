"""An HTTP client with names, redirects, timeouts and errors — plain stdlib urllib.

Run plainly or over multisock; with ``--demo`` it serves itself on the (virtual)
loopback first, so ``python -m multisock run --loss 2% examples/http_client.py --demo``
shows the whole exchange over the impaired stack.
"""

from __future__ import annotations

import http.server
import socket
import sys
import threading
import urllib.error
import urllib.request


class Redirecting(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/old":
            self.send_response(301)
            self.send_header("Location", "/new")
            self.end_headers()
            return
        body = f"arrived at {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def fetch(url: str, timeout: float = 5) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return f"{response.status} {response.read().decode()!r} (final URL {response.url})"
    except urllib.error.HTTPError as exc:
        return f"HTTP error {exc.code}"
    except urllib.error.URLError as exc:
        return f"failed: {exc.reason}"
    except TimeoutError:
        return "timed out"


def demo() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("resolve localhost:", socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)[0][4])
    print("redirect:", fetch(f"http://localhost:{port}/old"))
    print("closed port:", fetch(f"http://127.0.0.1:{port + 1}/"))
    print("unknown name:", fetch("http://no-such-host.invalid/"))
    server.shutdown()


if __name__ == "__main__":
    if "--demo" in sys.argv:
        demo()
    else:
        for url in sys.argv[1:]:
            print(url, "->", fetch(url))
