"""Once ``send()`` returns, the stack owns the bytes (issue #15, item 10).

trio's ``SocketStream.send_all`` releases each view it passed to ``send()`` as soon as
the call returns (``with view[sent:] as remaining: sock.send(remaining)``). The stack
must keep nothing the caller can release or change: the bytes still queued (not yet
sent, or waiting for their ACK) have to go out intact afterwards.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket as kernel
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host
from multisock.stack.tcp.buffers import SendBuffer

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = bytes(range(256)) * 4096 * 2  # 2 MiB: large views are kept without a copy


def test_send_buffer_keeps_no_view_the_caller_can_release() -> None:
    data = bytes(range(256)) * 1024  # 256 KiB
    buf = SendBuffer()
    with memoryview(data) as whole:
        buf.append(whole)  # the whole object
        with whole[1000:] as tail:  # a large part of it (kept without a copy)
            buf.append(tail)
        with whole[-100:] as small:  # a small part (copied)
            buf.append(small)
    expected = data + data[1000:] + data[-100:]
    assert buf.size == len(expected)
    got = b"".join(bytes(buf.peek(off, 65536)) for off in range(0, len(expected), 65536))
    assert got == expected


def _trio_send_all(sock: Any, data: bytes) -> None:
    """What trio's ``SocketStream.send_all`` does, on a blocking socket."""
    with memoryview(data) as view:
        sent = 0
        while sent < len(view):
            with view[sent:] as remaining:
                sent += sock.send(remaining)


def _echo_through(mod: Any) -> bytes:
    """Send PAYLOAD the trio way over loopback; returns what the other end read."""
    listener = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = mod.create_connection(listener.getsockname(), timeout=30)
    server, _ = listener.accept()
    server.settimeout(30)
    got = bytearray()

    def reader() -> None:
        while len(got) < len(PAYLOAD):
            chunk = server.recv(65536)
            if not chunk:
                return
            got.extend(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        _trio_send_all(client, PAYLOAD)
        thread.join(30)
    finally:
        for s in (client, server, listener):
            s.close()
    return bytes(got)


@pytest.fixture(params=["ideal", "delayed"])
def host(request: pytest.FixtureRequest) -> Iterator[multisock.Host]:
    net = multisock.Network(seed=10)
    host = net.add_host("owner", "10.6.0.1/24")
    if request.param == "delayed":  # segments wait in the link: the timers send the rest
        host.impair_loopback(delay="2ms")
    yield host
    net.close()


def test_released_views_still_arrive_intact(host: multisock.Host) -> None:
    assert _echo_through(kernel) == PAYLOAD  # the pattern itself is sound on the kernel
    with use_host(host):
        got = _echo_through(msock)
    assert len(got) == len(PAYLOAD) and hashlib.sha256(got).digest() == hashlib.sha256(PAYLOAD).digest()
    tcp = host.ip.tcp
    assert tcp is not None and tcp.counters["internal_errors"] == 0


def test_released_datagram_views_arrive_intact(host: multisock.Host) -> None:
    data = bytes(range(256)) * 200  # fragmented on the way (IPv4, 65535 loopback MTU is not hit)
    with use_host(host):
        rx = msock.socket(msock.AF_INET, msock.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        tx = msock.socket(msock.AF_INET, msock.SOCK_DGRAM)
        try:
            with memoryview(data) as view, view[100:] as part:
                assert tx.sendto(part, rx.getsockname()) == len(data) - 100
            assert rx.recv(65536) == data[100:]
        finally:
            tx.close()
            rx.close()


TRIO_ECHO = textwrap.dedent('''
    import functools, hashlib, socket, trio

    PAYLOAD = bytes(range(256)) * 4096 * 2

    async def echo(stream):
        async with stream:
            async for chunk in stream:
                await stream.send_all(chunk)

    async def main():
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(functools.partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            client = await trio.open_tcp_stream("127.0.0.1", port)
            got = bytearray()

            async def reader():
                while len(got) < len(PAYLOAD):
                    data = await client.receive_some(65536)
                    if not data:
                        break
                    got.extend(data)

            with trio.fail_after(60):
                async with trio.open_nursery() as inner:
                    inner.start_soon(reader)
                    await client.send_all(PAYLOAD)
            await client.aclose()
            nursery.cancel_scope.cancel()
        print(socket.socket.__module__, len(got), hashlib.sha256(got).digest() == hashlib.sha256(PAYLOAD).digest())

    trio.run(main)
''')


@pytest.mark.skipif(importlib.util.find_spec("trio") is None,
                    reason="trio is not installed (it is in the 'test' extra)")
def test_trio_tcp_echo_under_run(tmp_path: Path) -> None:
    script = tmp_path / "trio_echo.py"
    script.write_text(TRIO_ECHO)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "multisock", "run", "--delay", "1ms", str(script)],
                            capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["multisock.socket", str(len(PAYLOAD)), "True"], result.stdout
