"""The process's state the facade consults: which virtual host a socket call belongs to
when the caller did not say, and which stdlib modules activation has patched.

``multisock.socket.socket()`` (and so every patched program) creates sockets on
the *current host*: a thread-local override set with :func:`use_host`, else the
process-wide default host, created on first use on its own :class:`Network`.

:data:`patched_modules` is written by ``multisock.monkey`` (activation, the layer above)
and read by ``create_connection`` & co., which obey a program that swaps
``socket.socket`` while activated; it lives here so that the facade need not import
activation.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multisock.net.host import Host
    from multisock.net.network import Network

_local = threading.local()
_lock = threading.Lock()
_default_host: Host | None = None
patched_modules: set[str] = set()  # names of the stdlib modules multisock has patched
# True once MULTISOCK=1 activated this process (written by ``multisock._activate``, read by
# ``run``, which refuses to build a second network on top)
env_activated = False


def default_host() -> Host:
    override = getattr(_local, "host", None)
    if override is not None:
        return override
    global _default_host
    with _lock:
        if _default_host is None:
            _default_host = _create_default()
        return _default_host


def _create_default() -> Host:
    from multisock.net.network import Network

    seed_text = os.environ.get("MULTISOCK_SEED")
    try:
        seed = int(seed_text) if seed_text else None
    except ValueError:
        raise ValueError(f"MULTISOCK_SEED={seed_text!r}: not an integer seed") from None
    net = Network(seed=seed, name="default")
    return net.add_host(os.environ.get("MULTISOCK_HOSTNAME", "multisock"))


def set_default_host(host: Host | None) -> None:
    """Make ``host`` the process default (None: a fresh one is created on next use)."""
    global _default_host
    with _lock:
        _default_host = host


def default_network() -> Network:
    return default_host().net


@contextmanager
def use_host(host: Host) -> Iterator[Host]:
    """Sockets created by this thread inside the block live on ``host``."""
    previous = getattr(_local, "host", None)
    _local.host = host
    try:
        yield host
    finally:
        _local.host = previous
