"""``recv`` must not depend on nobody else still naming its scratch view.

Under hypercorn (trio, urllib3's pyOpenSSL tests in bridged mode) a server thread died on
``BufferError: Existing exports of data: object cannot be re-sized``: ``recv`` truncated its
bytearray while the memoryview it had lent to the receive path was still alive (a would-block
retry's traceback held it). Here the receive path keeps the view on purpose, as that frame
did; recv still returns the bytes."""

from __future__ import annotations

from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host
from tests.api.sidebyside import connected


def test_recv_returns_its_bytes_while_the_view_is_still_named() -> None:
    net = multisock.Network(seed=7)
    host = net.add_host("v", "10.7.0.1/24")
    kept: list[Any] = []
    try:
        with use_host(host):
            listener, client, server = connected(msock)
            core = server._sock
            receive = core._recv_into

            def keeping(view: memoryview, flags: int) -> int:
                kept.append(view)  # what a lingering traceback does
                return int(receive(view, flags))

            core._recv_into = keeping
            client.sendall(b"hello")
            assert server.recv(100) == b"hello"
            if not kept and multisock.COMPILED:
                pytest.skip("the compiled build's recv calls _recv_into directly, past the "
                            "instance attribute this test sets")
            assert len(kept) == 1
            with pytest.raises(ValueError, match="released"):  # lent, then taken back
                len(kept[0])
            for s in (client, server, listener):
                s.close()
    finally:
        net.close()
