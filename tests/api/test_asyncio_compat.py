"""asyncio over userspace sockets where CPython's test_asyncio found differences."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock import monkey
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=24)
    h = net.add_host("aio", "10.24.0.1/24")
    with use_host(h):
        yield h
    net.close()


@pytest.mark.parametrize("mod", [socket, msock], ids=["kernel", "multisock"])
def test_failed_send_leaves_no_export_of_the_callers_buffer(host: multisock.Host,
                                                             mod: Any) -> None:
    # asyncio's _write_ready clears its bytearray right after a failed send(): CPython has
    # released the buffer by then; the stack's frames in a traceback must not pin it
    srv = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = mod.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    cli.sendall(b"unread")
    conn.recv(1, mod.MSG_PEEK)  # wait until it is there, then close with it unread: RST
    conn.close()
    buf = bytearray(b"x" * 1000)
    failed = False
    try:
        for _ in range(1000):
            cli.send(buf)
    except OSError:
        failed = True
        buf.clear()  # with the exception (and its traceback) alive, as in asyncio
    assert failed
    cli.close()
    srv.close()


def test_loop_sendfile_takes_the_native_path(host: multisock.Host) -> None:
    data = b"y" * (256 * 1024 + 1)
    received = bytearray()

    class Sink(asyncio.Protocol):
        def data_received(self, chunk: bytes) -> None:
            received.extend(chunk)

    async def main() -> tuple[int, str, int]:
        loop = asyncio.get_running_loop()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        server = await loop.create_server(Sink, sock=lsock)
        csock = socket.socket()
        csock.connect(lsock.getsockname())
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=csock)
        csock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport.set_write_buffer_limits(high=4096)
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            task = loop.create_task(loop.sendfile(transport, f))
            await asyncio.sleep(0)
            try:
                transport.write(b"bare")
                refused = ""
            except RuntimeError as exc:  # the native path holds the transport, as on stock
                refused = str(exc)
            sent = await task
            position = f.tell()
        while len(received) < len(data):
            await asyncio.sleep(0.01)
        transport.close()
        server.close()
        await server.wait_closed()
        return sent, refused, position

    with monkey.patched(host):
        sent, refused, position = asyncio.run(main())
    assert sent == len(data) == position
    assert "sendfile is in progress" in refused
    assert bytes(received) == data
