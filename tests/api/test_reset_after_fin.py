"""A reset that follows the peer's FIN, and a reset that follows queued data, beside the kernel.

gevent's pywsgi closes a ``Connection: close`` connection; a client that writes again gets the
server's RST while already holding its FIN (CLOSE_WAIT). Linux's recv then says EOF (it asks
"did a FIN arrive" before the socket error) and keeps the EPIPE for ``SO_ERROR`` and ``send``;
bytes queued before any RST are delivered first. Each scenario runs on the kernel's loopback
and on a virtual host; the outcomes must be identical.
"""

from __future__ import annotations

import socket as kernel
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host

SETTLE = 0.1  # loopback delivery (kernel) and the driver thread's turn (multisock)


def pair(mod: Any) -> tuple[Any, Any]:
    with mod.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = mod.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def call(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except OSError as exc:
        return type(exc).__name__, exc.errno


def after(client: Any, mod: Any, first: str) -> list[Any]:
    """What the reader sees next: recv twice, a peek, SO_ERROR, send twice."""
    out = []
    if first == "so_error":
        out.append(call(lambda: client.getsockopt(mod.SOL_SOCKET, mod.SO_ERROR)))
    if first == "peek":
        out.append(call(lambda: client.recv(100, mod.MSG_PEEK)))
    out += [call(lambda: client.recv(100)), call(lambda: client.recv(100)),
            call(lambda: client.recv(100, mod.MSG_PEEK)),
            call(lambda: client.getsockopt(mod.SOL_SOCKET, mod.SO_ERROR)),
            call(lambda: client.send(b"x")), call(lambda: client.send(b"x"))]
    client.close()
    return out


def fin_then_reset(mod: Any, first: str) -> list[Any]:
    client, server = pair(mod)
    server.sendall(b"response")
    server.close()  # FIN
    time.sleep(SETTLE)
    client.sendall(b"next request")  # to a closed socket: RST, the client is in CLOSE_WAIT
    time.sleep(SETTLE)
    return after(client, mod, first)


def data_then_reset(mod: Any, first: str) -> list[Any]:
    client, server = pair(mod)
    client.sendall(b"unread")
    time.sleep(SETTLE)
    server.sendall(b"response")
    server.close()  # unread data: Linux resets instead of sending a FIN
    time.sleep(SETTLE)
    return after(client, mod, first)


def linger_zero_reset(mod: Any, first: str) -> list[Any]:
    client, server = pair(mod)
    server.sendall(b"response")
    time.sleep(SETTLE)
    server.setsockopt(mod.SOL_SOCKET, mod.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()
    time.sleep(SETTLE)
    return after(client, mod, first)


@pytest.fixture(scope="module")
def virtual_host() -> Iterator[Any]:
    net = multisock.Network(seed=5)
    yield net.add_host("resets", "10.5.0.1/24")
    net.close()


@pytest.mark.parametrize("first", ["recv", "so_error", "peek"])
@pytest.mark.parametrize("scenario", [fin_then_reset, data_then_reset, linger_zero_reset],
                         ids=lambda f: f.__name__)
def test_reset_outcomes_match_the_kernel(scenario: Any, first: str, virtual_host: Any) -> None:
    expected = scenario(kernel, first)
    with use_host(virtual_host):
        got = scenario(msock, first)
    assert got == expected


def test_fin_then_reset_is_eof_on_the_kernel_too() -> None:
    """The case the fix is about, spelled out (guards the table above against a kernel that
    changed its mind): the queued response, then EOF, the EPIPE kept for SO_ERROR."""
    out = fin_then_reset(kernel, "recv")
    assert out[:3] == [b"response", b"", b""]
    assert out[3] == 32  # EPIPE, still pending
