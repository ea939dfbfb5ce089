"""Run one scenario on the kernel's socket module and on multisock's, and compare.

A scenario is a function of a socket *module*; its outcome (the value it returns, or the
exception's type and errno) must be the same on both. The kernel runs on its loopback,
multisock on the loopback of the virtual host the caller gives.
"""

from __future__ import annotations

import socket as kernel
from collections.abc import Callable
from typing import Any

import multisock.socket as msock
from multisock.runtime import use_host

Scenario = Callable[[Any], Any]


def outcome(fn: Scenario, mod: Any) -> Any:
    try:
        return ("ok", fn(mod))
    except OSError as exc:
        return (type(exc).__name__, exc.errno)
    except (TypeError, ValueError, OverflowError) as exc:
        return (type(exc).__name__,)


def both(fn: Scenario, host: Any) -> tuple[Any, Any]:
    """(kernel's outcome, multisock's outcome) of ``fn``."""
    expected = outcome(fn, kernel)
    with use_host(host):
        got = outcome(fn, msock)
    return expected, got


def connected(mod: Any, family: int = kernel.AF_INET) -> tuple[Any, Any, Any]:
    """(listener, client, server) over the loopback of ``family``."""
    addr = "127.0.0.1" if family == kernel.AF_INET else "::1"
    listener = mod.socket(family, mod.SOCK_STREAM)
    listener.bind((addr, 0))
    listener.listen()
    client = mod.socket(family, mod.SOCK_STREAM)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server
