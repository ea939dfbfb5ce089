"""compat_tests' per-module resource rules keep test_timeout on loopback (issue 23).

test_timeout gets the ``network`` resource only because the runner deselects the test that
reaches pythontest.net and answers ``TCPTimeoutTestCase.setUp``'s www.python.org lookup with
a loopback listener; these checks hold the rules to that without running the module.
"""

from __future__ import annotations

import socket
import unittest

import pytest

from compat_tests import local_rules
from compat_tests.__main__ import manifest_for
from compat_tests.manifest import EXPECTED_FAILURES, NOT_IN_BRIDGED_MODE

test_timeout = pytest.importorskip("test.test_timeout")


def test_redirected_lookup_is_a_silent_loopback_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_timeout, "resolve_address", test_timeout.resolve_address)
    local_rules.apply_redirects("test_timeout")
    host, port = test_timeout.resolve_address("www.python.org.", 80)
    assert host == "127.0.0.1" and port > 0
    with socket.create_connection((host, port), timeout=5) as client:
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):  # the peer never sends: what testRecvTimeout needs
            client.recv(1)


def test_unreviewed_lookup_is_refused_not_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_timeout, "resolve_address", test_timeout.resolve_address)
    local_rules.apply_redirects("test_timeout")
    with pytest.raises(AssertionError, match="not redirected"):
        test_timeout.resolve_address("pythontest.net", 56666)


def test_connect_timeout_is_skipped_with_its_reason_before_setup() -> None:
    test = test_timeout.TCPTimeoutTestCase("testConnectTimeout")
    test.setUp = lambda: pytest.fail("setUp ran for a deselected test")  # type: ignore[method-assign]
    local_rules.deselect([test])
    result = unittest.TestResult()
    test.run(result)
    assert [reason for _, reason in result.skipped] == [
        local_rules.DESELECTED["test_timeout.TCPTimeoutTestCase.testConnectTimeout"]]


def test_network_granted_only_to_reviewed_modules() -> None:
    assert local_rules.granted_network("test_timeout.TCPTimeoutTestCase")
    assert not local_rules.granted_network("test_ssl")


def test_bridged_mode_drops_only_its_entries() -> None:
    assert set(EXPECTED_FAILURES) >= NOT_IN_BRIDGED_MODE
    default = manifest_for("test_ssl")
    bridged = manifest_for("test_ssl", "bridged")
    assert set(default) - set(bridged) == NOT_IN_BRIDGED_MODE & set(default)
