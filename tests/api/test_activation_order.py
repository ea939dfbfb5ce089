"""Modules imported after activation still get the stdlib's class hierarchy where they need it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_ssl_imported_after_activation_subclasses_the_kernel_socket() -> None:
    # found by CPython's test_httplib under compat_tests: ssl imported after patching made
    # ssl.SSLSocket a subclass of multisock's class, and every TLS socket failed to build
    code = (
        "from multisock.cli import activate; activate({})\n"
        "import _socket, socket, ssl\n"
        "assert issubclass(ssl.SSLSocket, _socket.socket), ssl.SSLSocket.__mro__\n"
        "ctx = ssl.create_default_context()\n"
        "s = socket.socket()\n"
        "t = ctx.wrap_socket(s, server_hostname='localhost', do_handshake_on_connect=False)\n"
        "assert isinstance(t, ssl.SSLSocket)\n"
        "t.close()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
