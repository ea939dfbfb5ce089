"""connect_ex() raises name-resolution errors, as CPython does (it resolves before connect(2))."""

from __future__ import annotations

import socket

import pytest

import multisock
import multisock.socket as msock


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
def test_connect_ex_raises_gaierror_for_unknown_names(kind: int) -> None:
    net = multisock.Network(seed=2)
    host = net.add_host("nodns")  # no resolver configured: unknown names fail locally
    try:
        with msock.socket(socket.AF_INET, kind, host=host) as s, \
                pytest.raises(socket.gaierror):
            s.connect_ex(("no-such-host.invalid", 443))
    finally:
        net.close()
