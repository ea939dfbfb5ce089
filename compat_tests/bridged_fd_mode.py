"""A pytest plugin for ``third_party_pytest``'s ``bridged`` mode: with ``--multisock``, every
socket made afterwards is in bridged fd mode, as ``multisock run --fd-mode bridged`` does
(``-p compat_tests.bridged_fd_mode``; the suite's C code, e.g. pyOpenSSL, then does its I/O
on real kernel fds)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    from multisock.api.stream import set_default_fd_mode

    set_default_fd_mode("bridged")
