"""multisock.socket has every public name of the stdlib socket module."""

from __future__ import annotations

import socket as stdlib

import multisock.socket as msock


def public_names(module: object) -> set[str]:
    return {n for n in dir(module) if not n.startswith("__")}


def test_every_stdlib_name_exists() -> None:
    missing = public_names(stdlib) - public_names(msock)
    assert not missing, sorted(missing)


def test_all_matches() -> None:
    assert set(stdlib.__all__) <= set(msock.__all__)


def test_constants_enums_and_exceptions_are_the_stdlib_objects() -> None:
    for name in ("AF_INET", "SOCK_STREAM", "MSG_PEEK", "SOL_SOCKET", "TCP_NODELAY", "IPPROTO_TCP"):
        assert getattr(msock, name) is getattr(stdlib, name) or getattr(msock, name) == getattr(stdlib, name)
    for name in ("AddressFamily", "SocketKind", "MsgFlag", "AddressInfo", "error", "herror",
                 "gaierror", "timeout", "SocketIO", "_GLOBAL_DEFAULT_TIMEOUT", "has_ipv6"):
        assert getattr(msock, name) is getattr(stdlib, name)
    assert msock.timeout is TimeoutError


def test_socket_type_identity_and_subclassing() -> None:
    assert msock.SocketType is msock.socket

    class Mine(msock.socket):
        pass

    with Mine(msock.AF_UNIX, msock.SOCK_STREAM) as s:
        assert isinstance(s, msock.socket)
        assert isinstance(s, Mine)
        assert s.family is msock.AF_UNIX


def test_kernel_families_fall_through() -> None:
    a, b = msock.socketpair()
    with a, b:
        assert a.family == msock.AF_UNIX
        a.sendall(b"through the kernel")
        assert b.recv(100) == b"through the kernel"
        assert not a._is_userspace


def test_pickling_is_refused() -> None:
    import pickle

    with msock.socket(msock.AF_UNIX, msock.SOCK_DGRAM) as s:
        try:
            pickle.dumps(s)
        except TypeError as exc:
            assert "cannot pickle" in str(exc)
        else:
            raise AssertionError("pickling a socket must fail")
