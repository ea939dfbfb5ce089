"""patch_ssl(): the hook is on the stdlib's class, kernel sockets keep the stdlib's path."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest

import multisock
from multisock import monkey
from multisock.tls import SSLSocket
from tests.tls.conftest import Pki


def test_patch_all_hooks_wrap_socket_and_unpatch_restores_it() -> None:
    original_class = ssl.SSLContext
    original_wrap = ssl.SSLContext.__dict__["wrap_socket"]
    original_create_connection = ssl.create_connection
    monkey.patch_all()
    monkey.patch_ssl()  # idempotent
    try:
        assert monkey.is_patched("ssl")
        assert ssl.SSLContext is original_class  # never a rebound subclass
        assert ssl.SSLContext.__dict__["wrap_socket"] is not original_wrap
        assert monkey.get_original("ssl", "SSLContext.wrap_socket") is original_wrap
        assert ssl.create_connection is multisock.socket.create_connection
    finally:
        monkey.unpatch_all()
    assert ssl.SSLContext.__dict__["wrap_socket"] is original_wrap
    assert ssl.create_connection is original_create_connection
    assert monkey.get_original("ssl", "SSLContext.wrap_socket") is original_wrap
    assert not monkey.is_patched("ssl")


def test_context_setters_do_not_recurse_when_patched() -> None:
    """The stdlib's setters use super(SSLContext, SSLContext): fine as long as the name is
    the stdlib's class (a rebound subclass would make them recurse forever)."""
    monkey.patch_all()
    try:
        ctx = ssl.create_default_context()
        ctx.options |= ssl.OP_NO_COMPRESSION
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx._msg_callback = lambda *args: None  # type: ignore[attr-defined]
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.options & ssl.OP_NO_COMPRESSION
    finally:
        monkey.unpatch_all()


def test_kernel_sockets_keep_the_stdlib_class(pki: Pki) -> None:
    """Under patch_all, a kernel socket (here a real socketpair end) is wrapped by the
    stdlib's own SSLSocket, and TLS over it works as before."""
    a, b = socket.socketpair()  # made before patching: kernel sockets
    monkey.patch_all()
    try:
        server_ctx, client_ctx = pki.server_ctx(), pki.client_ctx()
        result: list[object] = []

        def serve() -> None:
            with server_ctx.wrap_socket(b, server_side=True) as s:
                result.append(type(s))
                s.sendall(s.recv(10).upper())

        thread = threading.Thread(target=serve)
        thread.start()
        with client_ctx.wrap_socket(a, server_hostname="localhost") as c:
            assert type(c) is ssl.SSLSocket
            c.sendall(b"kernel")
            assert c.recv(10) == b"KERNEL"
        thread.join(10)
        assert result == [ssl.SSLSocket]
    finally:
        monkey.unpatch_all()


def test_userspace_socket_gets_multisock_class_and_is_an_sslsocket(pki: Pki) -> None:
    net = multisock.Network(seed=4)
    host = net.add_host("h")
    monkey.patch_ssl()  # ssl alone: the socket module stays the kernel's
    try:
        plain = multisock.socket.socket(host=host)
        wrapped = pki.client_ctx().wrap_socket(plain, server_hostname="localhost",
                                               do_handshake_on_connect=False)
        assert type(wrapped) is SSLSocket
        assert isinstance(wrapped, ssl.SSLSocket)
        assert wrapped.fileno() > 0 and wrapped.family == socket.AF_INET
        assert wrapped.version() is None and wrapped.cipher() is None
        with pytest.raises(OSError) as caught:
            wrapped.getpeercert()
        assert caught.value.errno == 107  # ENOTCONN, as the stdlib's class says
        with pytest.raises(ValueError, match="check_hostname requires server_hostname"):
            pki.client_ctx().wrap_socket(multisock.socket.socket(host=host))
        udp = multisock.socket.socket(socket.AF_INET, socket.SOCK_DGRAM, host=host)
        with pytest.raises(NotImplementedError):
            pki.client_ctx().wrap_socket(udp, server_hostname="localhost")
        udp.close()
        wrapped.close()
        assert plain._closed  # wrap_socket took the socket over, as detach() does
    finally:
        monkey.unpatch_all()
        net.close()


def test_close_after_its_sock_was_closed_is_silent(pki: Pki) -> None:
    """gevent's pywsgi reads out and closes ``socket._sock``, then the server closes the
    socket. With gevent's kernel SSLSocket ``_sock`` is a raw socket object, which a second
    close leaves alone; ours is the core, and closing the TLS socket after it must be as
    silent (it raised EBADF, failing every pywsgi https handler greenlet)."""
    net = multisock.Network(seed=6)
    host = net.add_host("h")
    monkey.patch_ssl()
    try:
        wrapped = pki.client_ctx().wrap_socket(multisock.socket.socket(host=host),
                                               server_hostname="localhost")
        plain = wrapped._plain
        wrapped._sock.close()
        wrapped.close()
        wrapped.close()  # and again, as gevent's server does
        assert plain._closed and plain._released
        with pytest.raises(OSError) as caught:
            wrapped.getsockname()
        assert caught.value.errno == 9  # EBADF: the socket is closed all the same
    finally:
        monkey.unpatch_all()
        net.close()


def test_custom_sslsocket_class_and_unclosed_warning(pki: Pki) -> None:
    import gc
    import warnings

    class MySSLSocket(ssl.SSLSocket):
        def marker(self) -> str:
            return f"mine, over {self.version()}"

    net = multisock.Network(seed=5)
    host = net.add_host("h")
    monkey.patch_ssl()
    try:
        ctx = pki.client_ctx()
        ctx.sslsocket_class = MySSLSocket
        wrapped = ctx.wrap_socket(multisock.socket.socket(host=host),
                                  server_hostname="localhost")
        assert isinstance(wrapped, MySSLSocket) and isinstance(wrapped, SSLSocket)
        assert type(wrapped).__name__ == "MySSLSocket"
        assert wrapped.marker() == "mine, over None"
        with ctx.wrap_socket(multisock.socket.socket(host=host),
                             server_hostname="localhost") as other:
            assert type(other) is type(wrapped)  # one derived class per custom class
        text = repr(wrapped)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del wrapped
            gc.collect()
        messages = [str(w.message) for w in caught if w.category is ResourceWarning]
        assert messages and all(text in m for m in messages)  # the TLS socket, not the plain one
    finally:
        monkey.unpatch_all()
        net.close()
