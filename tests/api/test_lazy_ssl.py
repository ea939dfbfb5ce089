"""patch_all() does not load OpenSSL: ssl is patched when (and if) the program imports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(code: str) -> None:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr


def test_patch_all_leaves_ssl_unimported_and_patches_it_on_import() -> None:
    _run(
        "import sys\n"
        "from multisock import monkey\n"
        "monkey.patch_all()\n"
        "assert 'ssl' not in sys.modules and '_ssl' not in sys.modules\n"
        "assert not monkey.is_patched('ssl')\n"
        "import _socket, socket, ssl\n"
        "import multisock.socket\n"
        "assert socket.socket is multisock.socket.socket  # ours again after ssl's import\n"
        "assert issubclass(ssl.SSLSocket, _socket.socket), ssl.SSLSocket.__mro__\n"
        "assert monkey.is_patched('ssl')\n"
        "assert getattr(ssl.SSLContext.wrap_socket, 'multisock_hook', False)\n"
        "monkey.unpatch_all()\n"
        "assert socket.socket is monkey.get_original('socket', 'socket')\n"
        "assert not getattr(ssl.SSLContext.wrap_socket, 'multisock_hook', False)\n"
    )


def test_ssl_imported_after_unpatch_is_left_alone() -> None:
    _run(
        "import sys\n"
        "from multisock import monkey\n"
        "monkey.patch_all()\n"
        "monkey.unpatch_all()\n"
        "import ssl\n"
        "assert not monkey.is_patched('ssl')\n"
        "assert not getattr(ssl.SSLContext.wrap_socket, 'multisock_hook', False)\n"
    )


def test_patch_socket_alone_then_ssl_keeps_the_stdlib_hierarchy() -> None:
    _run(
        "from multisock import monkey\n"
        "monkey.patch_socket()\n"
        "import _socket, socket, ssl\n"
        "import multisock.socket\n"
        "assert socket.socket is multisock.socket.socket\n"
        "assert issubclass(ssl.SSLSocket, _socket.socket)\n"
        "assert not monkey.is_patched('ssl')  # only patch_all() asks for ssl\n"
    )
