"""Per-module resource rules: which CPython test modules get the ``network`` resource, and
which of their tests the runner deselects or redirects so that nothing leaves loopback.

regrtest's ``network`` resource is all or nothing per module, but some modules ask for it in
``setUpModule`` and then run mostly local tests. For those, the runner grants ``network`` and
then, per test or per class:

* deselects the tests that would connect to or resolve a host on the internet: they are
  marked skipped (before ``setUp`` runs) with the reason recorded here, on both sides, so
  they show up as skips with that reason in the report;
* replaces a module-level lookup of an internet name with a loopback peer, where a class's
  ``setUp`` resolves it for every test (test_timeout's ``TCPTimeoutTestCase``).

Every rule was written by reading the module's source for this interpreter (3.11): what the
deselected tests do, and that the others only use ``socket_helper.HOST`` (127.0.0.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# modules whose 'network' resource guards localhost-only tests (checked by reading them)
LOCAL_NETWORK_MODULES = frozenset({"test_socketserver", "test_timeout"})

# exact test ids (as the runner names them) that reach outside, with why
DESELECTED: dict[str, str] = {
    "test_timeout.TCPTimeoutTestCase.testConnectTimeout":
        "deselected by compat_tests: resolves pythontest.net and connects to its blackhole/"
        "whitehole ports 56666/56667 (a host on the internet); no loopback equivalent drops "
        "SYNs silently",
}


@dataclass
class Redirect:
    """A module-level resolver replaced by one that maps the named hosts to a loopback peer."""

    module: str
    function: str
    hosts: frozenset[str]
    why: str
    _peer: Any = field(default=None, repr=False)


# test_timeout.TCPTimeoutTestCase.setUp calls resolve_address('www.python.org.', 80) for every
# test; only testRecvTimeout (connect, then recv must time out) and the deselected
# testConnectTimeout use the address. The redirect answers with a loopback listener that never
# accepts and never sends: connect() completes in its backlog, recv() times out - what the test
# needs from www.python.org:80 (a peer that stays silent for 1.5 s).
REDIRECTS = [
    Redirect("test.test_timeout", "resolve_address",
             frozenset({"www.python.org.", "www.python.org"}),
             "TCPTimeoutTestCase.setUp resolves www.python.org for every test: answered with a "
             "silent loopback listener"),
]


def granted_network(target: str) -> bool:
    return target.split(".")[0] in LOCAL_NETWORK_MODULES


def _silent_peer(redirect: Redirect) -> tuple[str, int]:
    """One listener per process, created on first use: after activation, so under multisock it
    is a userspace socket like the test's own."""
    import socket

    if redirect._peer is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        redirect._peer = sock  # kept open for the life of the worker
    host, port = redirect._peer.getsockname()[:2]
    return host, port


def apply_redirects(target: str) -> None:
    """Install the redirects of ``target``'s module (call after activation, before loading)."""
    import importlib

    module_name = "test." + target.split(".")[0]
    for redirect in REDIRECTS:
        if redirect.module != module_name:
            continue
        module = importlib.import_module(module_name)

        def resolve(host: str, port: int, _r: Redirect = redirect) -> tuple[str, int]:
            if host not in _r.hosts:
                # a lookup nobody reviewed: refuse rather than reach outside
                raise AssertionError(f"compat_tests: {host!r} is not redirected to loopback; "
                                     "deselect the test in compat_tests/local_rules.py")
            return _silent_peer(_r)

        setattr(module, redirect.function, resolve)


def deselect(tests: list[Any]) -> None:
    """Mark the deselected tests skipped, with their reason, before their ``setUp`` runs."""
    import unittest

    for test in tests:
        full = test.id()
        reason = DESELECTED.get(full[len("test."):] if full.startswith("test.") else full)
        if reason is None:
            continue
        name = test._testMethodName
        setattr(test, name, unittest.skip(reason)(getattr(test, name)))
