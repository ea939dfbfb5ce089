"""``recv`` must not depend on nobody else still naming its scratch view.

Under hypercorn (trio, urllib3's pyOpenSSL tests in bridged mode) a server thread died on
``BufferError: Existing exports of data: object cannot be re-sized``: ``recv`` truncated its
bytearray while the memoryview it had lent to the receive path was still alive (a would-block
retry's traceback held it). Here the receive path keeps the view on purpose, as that frame
did; recv still returns the bytes."""

from __future__ import annotations

import socket
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

            try:
                core._recv_into = keeping
            except AttributeError:  # (a native class: its methods are read-only)
                assert multisock.COMPILED
                pytest.skip("the compiled build's cores are native classes: a method cannot "
                            "be replaced on an instance")
            client.sendall(b"hello")
            # a flag takes recv through the scratch buffer (with none and bytes queued, recv
            # takes them from the queue as they are, lending no view to anybody)
            assert server.recv(100, socket.MSG_DONTWAIT) == b"hello"
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


def test_recv_of_queued_bytes_across_chunks_and_in_parts() -> None:
    """recv with no flags takes queued bytes straight from the receive queue: whole
    segments, parts of one, and several joined, in order, as the kernel's recv does."""
    net = multisock.Network(seed=7)
    host = net.add_host("v", "10.7.0.1/24")
    try:
        with use_host(host):
            listener, client, server = connected(msock)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for part in (b"abc", b"defgh", b"ij"):
                client.sendall(part)  # three segments, three chunks queued
            got = b""
            while len(got) < 10:
                got += server.recv(4)  # cuts inside chunks and across them
            assert got == b"abcdefghij"
            client.sendall(b"x" * 100_000)
            got = b""
            while len(got) < 100_000:
                got += server.recv(65536)
            assert got == b"x" * 100_000
            client.close()
            assert server.recv(10) == b""  # EOF still comes from the full path
            for s in (server, listener):
                s.close()
    finally:
        net.close()
