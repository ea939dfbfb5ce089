"""The reviewed expected-failure manifest: tests that pass on the stock socket module and are
known to fail under multisock, by exact ``module.Class.method`` id, each with the reason.

The runner validates it on every run: an id that matches no collected test is an error, a
listed test that passes under multisock fails the run ("unexpectedly passing"), and a test
that passes stock but fails under multisock without being listed here fails the run. Fix the
stack or the facade before adding an entry; an entry says why the behaviour cannot (or
deliberately does not) match the kernel's.
"""

from __future__ import annotations

EXPECTED_FAILURES: dict[str, str] = {
    # ------------------------------------------------------------------ test_socket
    "test_socket.GeneralModuleTests.test_SocketType_is_socketobject":
        "asserts socket.SocketType is _socket.socket and socket() instances are of it: the "
        "facade is not a _socket.socket subclass (that C type needs a kernel socket fd)",
    # ------------------------------------------------------------------ test_ssl
    "test_ssl.SimpleBackgroundTests.test_makefile_close":
        "calls os.read(fd, 0) on the socket's fileno(): in the default (readiness) fd mode a "
        "userspace socket's fd is an eventfd (its readiness for select/epoll), where a "
        "zero-byte read is EINVAL, not b''; passes in bridged fd mode (`--fd-mode bridged`: "
        "fileno() is a kernel socketpair end), where the entry does not apply",
}

# entries that do not apply when the multisock side runs in bridged fd mode (``python -m
# compat_tests --fd-mode bridged``): there the test must pass like any other
NOT_IN_BRIDGED_MODE: frozenset[str] = frozenset({
    "test_ssl.SimpleBackgroundTests.test_makefile_close",
})
