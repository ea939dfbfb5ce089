"""SO_LINGER with a nonzero timeout, side by side with the kernel.

Measured on Linux: close() blocks (even on a non-blocking socket) until the data and FIN are
acknowledged or the linger time passes; at the deadline it just returns and the orphaned
connection carries on - no RST, the peer still reads every byte and then EOF. Before, the
userspace close() returned at once whatever SO_LINGER said (only {1, 0} was honoured).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from tests.api.sidebyside import both, connected

LINGER = 1


@pytest.fixture(scope="module")
def host() -> Iterator[Any]:
    net = multisock.Network(seed=23)
    yield net.add_host("linger", "10.23.1.1/24")
    net.close()


def _fill(sock: Any) -> int:
    """Send until the send buffer is full (the peer is not reading): the byte count."""
    sock.setblocking(False)
    total = 0
    try:
        while True:
            total += sock.send(b"x" * 65536)
    except BlockingIOError:
        pass
    return total


def _drain(sock: Any, count: list[int] | None = None) -> tuple[int, bool]:
    """Read to EOF; ``count[0]`` follows the bytes read so far (for another thread)."""
    got = 0
    while True:
        data = sock.recv(65536)
        if not data:
            return got, True
        got += len(data)
        if count is not None:
            count[0] = got


def peer_not_reading(mod: Any) -> Any:
    """close() waits out the linger time, then the peer still gets everything and EOF."""
    listener, client, server = connected(mod)
    with listener, client:
        server.setsockopt(mod.SOL_SOCKET, mod.SO_LINGER, struct.pack("ii", 1, LINGER))
        total = _fill(server)  # left non-blocking: Linux lingers anyway
        start = time.monotonic()
        server.close()
        waited = time.monotonic() - start
        client.settimeout(30)
        got, eof = _drain(client)
        return waited >= LINGER * 0.9, got == total, eof


def peer_reading(mod: Any) -> Any:
    """close() returns once the peer has acknowledged the data: as the send buffer was full
    (the receiver's window closed), the reader must have taken some before that. A close()
    that does not wait returns before the reader starts."""
    listener, client, server = connected(mod)
    with listener, client:
        server.setsockopt(mod.SOL_SOCKET, mod.SO_LINGER, struct.pack("ii", 1, 30))
        total = _fill(server)
        server.setblocking(True)
        got = [0]
        closing = threading.Event()

        def reader() -> None:
            closing.wait()
            time.sleep(0.05)  # (so that a close() that does not wait returns first)
            _drain(client, got)

        thread = threading.Thread(target=reader)
        thread.start()
        closing.set()
        server.close()
        read_at_return = got[0]
        thread.join(30)
        return read_at_return > 0, got[0] == total


@pytest.mark.parametrize("scenario", [peer_not_reading, peer_reading])
def test_linger_timeout_like_kernel(scenario: Any, host: Any) -> None:
    expected, got = both(scenario, host)
    assert expected == ("ok", (True, True, True)) or expected == ("ok", (True, True))
    assert got == expected


def test_linger_option_round_trip(host: Any) -> None:
    def scenario(mod: Any) -> Any:
        with mod.socket() as s:
            s.setsockopt(mod.SOL_SOCKET, mod.SO_LINGER, struct.pack("ii", 1, 7))
            return struct.unpack("ii", s.getsockopt(mod.SOL_SOCKET, mod.SO_LINGER, 8))

    expected, got = both(scenario, host)
    assert got == expected == ("ok", (1, 7))
