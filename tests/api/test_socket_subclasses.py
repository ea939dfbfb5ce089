"""Socket subclasses through ``accept()`` and ``dup()``, side by side with the kernel's socket.

The stdlib's ``accept()`` builds a plain ``socket`` whatever the listener's class, and its
``dup()`` calls ``self.__class__(family, type, proto, fileno=fd)``, so a subclass's
``__init__`` runs on the copy. PySocks relies on it (its ``__init__`` sets the proxy state
that ``getpeername()`` returns); issue 15 item 11 found multisock skipping ``__init__``.
"""

from __future__ import annotations

import importlib.util
import os
import socket as kernel
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=115)
    h = net.add_host("subclass", "10.115.0.1/24")
    with use_host(h):
        yield h
    net.close()


def subclass_of(base: type) -> type:
    """A subclass whose ``__init__`` records its arguments and sets an attribute."""

    class Tagged(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.tag = "set by __init__"
            self.init_args = (args, sorted(kwargs))

    return Tagged


def listener(cls: type, mod: Any, family: int) -> Any:
    srv = cls(family, mod.SOCK_STREAM)
    if family == mod.AF_UNIX:
        srv.bind(f"\0multisock-subclass-{os.getpid()}-{id(srv)}")
    else:
        srv.bind(("127.0.0.1", 0))
    srv.listen()
    return srv


FAMILIES = [("inet", kernel.AF_INET), ("unix", kernel.AF_UNIX)]  # userspace, kernel-backed


@pytest.mark.parametrize("family", [f for _, f in FAMILIES], ids=[n for n, _ in FAMILIES])
@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_accept_returns_a_plain_socket(host: multisock.Host, mod: Any, family: int) -> None:
    cls = subclass_of(mod.socket)
    srv = listener(cls, mod, family)
    cli = mod.socket(family, mod.SOCK_STREAM)
    try:
        cli.connect(srv.getsockname())
        conn, _ = srv.accept()
        with conn:
            assert type(conn) is mod.socket
            assert not hasattr(conn, "tag")
            cli.sendall(b"ping")
            assert conn.recv(4) == b"ping"
    finally:
        cli.close()
        srv.close()


@pytest.mark.parametrize("family", [f for _, f in FAMILIES], ids=[n for n, _ in FAMILIES])
@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_dup_runs_the_subclass_init(host: multisock.Host, mod: Any, family: int) -> None:
    cls = subclass_of(mod.socket)
    srv = listener(mod.socket, mod, family)
    cli = cls(family, mod.SOCK_STREAM)
    try:
        cli.connect(srv.getsockname())
        cli.settimeout(7.0)
        conn, _ = srv.accept()
        copy = cli.dup()
        assert type(copy) is cls
        assert copy.tag == "set by __init__"
        # the stdlib's exact call: three positionals and fileno= (an int)
        assert copy.init_args == ((cli.family, cli.type, cli.proto), ["fileno"])
        assert copy.gettimeout() == 7.0
        cli.close()  # the copy keeps the connection open
        copy.sendall(b"via the copy")
        assert conn.recv(64) == b"via the copy"
        copy.close()
        assert conn.recv(64) == b""  # the last reference closed: EOF
        conn.close()
    finally:
        cli.close()
        srv.close()


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_dup_of_a_plain_socket_is_plain(host: multisock.Host, mod: Any) -> None:
    s = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    copy = s.dup()
    assert type(copy) is mod.socket
    s.close()
    copy.bind(("127.0.0.1", 0))  # still open: dup() took its own reference
    copy.close()


def test_dup_whose_init_raises_leaves_no_reference(host: multisock.Host) -> None:
    class Refusing(msock.socket):
        armed = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if Refusing.armed:
                raise RuntimeError("no copies")
            super().__init__(*args, **kwargs)

    s = Refusing(msock.AF_INET, msock.SOCK_STREAM)
    Refusing.armed = True
    with pytest.raises(RuntimeError):
        s.dup()
    core = s._sock
    s.close()
    assert core.closed  # no reference was left behind by the failed copy


# ------------------------------------------------------------------------- PySocks


def socks_module() -> ModuleType:
    """A private copy of PySocks imported while ``socket`` is patched, so that its
    ``socksocket`` subclasses multisock's class (as in a program run under multisock)."""
    socks = pytest.importorskip("socks", reason="PySocks (pip install pysocks) not installed")
    spec = importlib.util.spec_from_file_location("socks_over_multisock", socks.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def patched_socks() -> Iterator[tuple[ModuleType, multisock.Host]]:
    from tests.patched_host import patched_default_host

    with patched_default_host(seed=116, name="socks") as h:
        module = socks_module()
        assert issubclass(module.socksocket, msock.socket)
        yield module, h


def test_pysocks_accept_and_dup_patterns(patched_socks: tuple[ModuleType, Any]) -> None:
    socks, _ = patched_socks
    srv = socks.socksocket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = socks.socksocket()  # no proxy set: a direct connection
    try:
        cli.connect(srv.getsockname())
        conn, _ = srv.accept()
        assert type(conn) is msock.socket
        copy = cli.dup()
        assert type(copy) is socks.socksocket
        assert copy.proxy == (None, None, None, None, None, None)
        assert copy.proxy_peername is None  # what __init__ sets (the stdlib's dup() too)
        assert cli.getpeername() == srv.getsockname()
        copy.sendall(b"x")
        assert conn.recv(1) == b"x"
        copy.close()
        conn.close()
    finally:
        cli.close()
        srv.close()


def test_pysocks_over_tls(patched_socks: tuple[ModuleType, Any], tmp_path: Any) -> None:
    trustme = pytest.importorskip("trustme", reason="trustme (a test dependency) not installed")
    import ssl

    socks, _ = patched_socks
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    srv = msock.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            got.append(tls.recv(64))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    cli = socks.socksocket()
    cli.settimeout(20)
    cli.connect(srv.getsockname())
    with client_ctx.wrap_socket(cli, server_hostname="localhost") as tls:
        tls.sendall(b"hello over socks+tls")
    thread.join(30)
    srv.close()
    assert got == [b"hello over socks+tls"]
