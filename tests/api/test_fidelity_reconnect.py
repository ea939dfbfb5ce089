"""connect() again after a failed connect(), as Linux and CPython do it.

Measured on the kernel side by side: a blocking socket connects again after ECONNREFUSED;
with a timeout (CPython connects non-blocking, polls, reads SO_ERROR) the socket stays
"connecting", so the second connect() reports ECONNABORTED, the third connects and the
fourth returns 0 once more before EISCONN; non-blocking gives EINPROGRESS, then the
refusal. Before, multisock treated the timeout case like the blocking one.
"""

from __future__ import annotations

import socket as kernel
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import multisock
from tests.api.sidebyside import both


@pytest.fixture(scope="module")
def host() -> Iterator[Any]:
    net = multisock.Network(seed=23)
    yield net.add_host("reconnect", "10.23.0.1/24")
    net.close()


def _free_port(mod: Any) -> int:
    with mod.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reconnect(timeout: float | None, use_ex: bool, bind: bool) -> Callable[[Any], Any]:
    def scenario(mod: Any) -> Any:
        port = _free_port(mod)
        out: list[Any] = []
        listener = None
        with mod.socket() as s:
            s.settimeout(timeout)
            if bind:
                s.bind(("127.0.0.1", 0))
            for attempt in range(6):
                if attempt == 1:
                    listener = mod.socket()
                    listener.setsockopt(mod.SOL_SOCKET, mod.SO_REUSEADDR, 1)
                    listener.bind(("127.0.0.1", port))
                    listener.listen()
                if use_ex:
                    out.append(s.connect_ex(("127.0.0.1", port)))
                else:
                    try:
                        s.connect(("127.0.0.1", port))
                        out.append(0)
                    except OSError as exc:
                        out.append((type(exc).__name__, exc.errno))
                out.append(s.getsockopt(mod.SOL_SOCKET, mod.SO_ERROR))
                try:
                    out.append(s.getpeername()[1] == port)
                except OSError as exc:
                    out.append(exc.errno)
            if listener is not None:
                conn, _ = listener.accept()
                s.sendall(b"hello")
                out.append(conn.recv(5))
                conn.close()
                listener.close()
        return out

    scenario.__name__ = f"reconnect_{timeout}_{'ex' if use_ex else 'raise'}_{bind}"
    return scenario


CASES = [reconnect(t, ex, b) for t in (None, 5.0, 0.0) for ex in (False, True)
         for b in (False, True)]


@pytest.mark.parametrize("scenario", CASES, ids=lambda f: f.__name__)
def test_same_as_kernel(scenario: Any, host: Any) -> None:
    expected, got = both(scenario, host)
    assert expected[0] == "ok", expected
    assert got == expected


def test_timeout_case_is_the_measured_one() -> None:
    """The kernel's sequence the issue describes (guards the scenario itself)."""
    _, results = ("ok", reconnect(5.0, False, False)(kernel))
    assert results[0] == ("ConnectionRefusedError", 111)
    assert results[3] == ("ConnectionAbortedError", 103)
    assert results[6] == 0
