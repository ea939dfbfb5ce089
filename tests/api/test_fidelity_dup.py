"""``dup()`` and ``fromfd()`` give objects with timeouts of their own, as CPython's do.

Before, the copy shared the core's timeout: ``dup().settimeout(0)`` made the original
non-blocking too (a TLS wrapper dups its plain socket, so its timeout leaked back).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import multisock
from tests.api.sidebyside import both, connected


@pytest.fixture(scope="module")
def host() -> Iterator[Any]:
    net = multisock.Network(seed=23)
    yield net.add_host("dup", "10.23.0.1/24")
    net.close()


def dup_own_timeout(mod: Any) -> Any:
    listener, client, server = connected(mod)
    with listener, client, server:
        server.settimeout(3.0)
        copy = server.dup()
        with copy:
            out: list[Any] = [copy.gettimeout(), copy.timeout]
            copy.settimeout(0.0)
            out += [server.gettimeout(), copy.gettimeout(), server.getblocking(),
                    copy.getblocking()]
            try:
                copy.recv(1)
            except BlockingIOError as exc:
                out.append(("copy", type(exc).__name__, exc.errno))
            server.settimeout(0.05)
            try:
                server.recv(1)
            except TimeoutError as exc:
                out.append(("server", str(exc)))
            client.sendall(b"ab")
            out.append(server.recv(1))  # the original's own timeout: it waits for data
            out.append(copy.recv(1))
            copy.setblocking(True)
            out += [server.gettimeout(), copy.gettimeout()]
        return out


def fromfd_default_timeout(mod: Any) -> Any:
    listener, client, server = connected(mod)
    with listener, client, server:
        server.settimeout(2.0)
        other = mod.fromfd(server.fileno(), mod.AF_INET, mod.SOCK_STREAM)
        with other:
            out = [other.gettimeout(), server.gettimeout()]
            other.settimeout(0.0)
            out.append(server.gettimeout())
            client.sendall(b"z")
            out.append(server.recv(1))
        return out


@pytest.mark.parametrize("scenario", [dup_own_timeout, fromfd_default_timeout])
def test_same_as_kernel(scenario: Any, host: Any) -> None:
    expected, got = both(scenario, host)
    assert expected[0] == "ok", expected
    assert got == expected
