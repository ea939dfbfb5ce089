"""One virtual host as the process default with everything patched, and the kernel's view.

Tests of unmodified programs (http.server, requests, ssl...) need a bare ``socket()`` to
land on a virtual host, and need to prove afterwards that the kernel never carried their
bytes. Both pieces live here once, with what differs between suites as parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import multisock
from multisock import monkey
from multisock.runtime import set_default_host


@contextmanager
def patched_default_host(*, seed: int, name: str, addresses: tuple[str, ...] = (),
                         loopback_delay: str | None = None,
                         patch: Callable[[], object] = monkey.patch_all
                         ) -> Iterator[multisock.Host]:
    """A fresh network with one host ``name``, made the default host, ``patch()`` on.

    ``loopback_delay`` impairs the host's loopback (e.g. ``"1ms"``), so that a send is not
    delivered before it returns and programs meet the interleavings of a real network;
    ``None`` keeps the ideal loopback. ``patch`` is ``monkey.patch_all`` unless a suite wants
    less (``monkey.patch_ssl``: TLS on the host, the kernel's ``socket`` module untouched).
    Everything is undone on exit, even after a failure.
    """
    net = multisock.Network(seed=seed)
    host = net.add_host(name, *addresses)
    if loopback_delay is not None:
        host.impair_loopback(delay=loopback_delay)
    set_default_host(host)
    patch()
    try:
        yield host
    finally:
        monkey.unpatch_all()
        set_default_host(None)
        net.close()


def kernel_refused(port: int, *, timeout: float = 5.0) -> bool:
    """True if the kernel's loopback has nothing on ``port`` (the server lives on the stack).

    Uses the original kernel socket class, so it works while ``patch_all()`` is on.
    """
    kernel = monkey.get_original("socket", "socket")()
    kernel.settimeout(timeout)
    try:
        return kernel.connect_ex(("127.0.0.1", port)) != 0
    finally:
        kernel.close()
