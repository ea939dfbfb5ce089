"""The hook ``multisock.monkey.patch_ssl()`` puts on ``ssl.SSLContext.wrap_socket``.

It is set on the stdlib's own class, not on a subclass rebound as ``ssl.SSLContext``:
the stdlib's property setters (``options``, ``verify_mode``, ``minimum_version``...)
call ``super(SSLContext, SSLContext)`` with the *module global* ``SSLContext``, so
rebinding that name to a subclass makes them find themselves again and recurse
forever (the trap gevent's ``ssl`` module documents). Kernel sockets go to the
stdlib's method untouched; only userspace stream sockets get
:class:`~multisock.tls.sslsocket.SSLSocket`. ``ssl.wrap_socket`` and
``ssl.get_server_certificate`` go through ``SSLContext.wrap_socket`` too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from multisock.tls.sslsocket import is_userspace_stream, sslsocket_class_for


def make_wrap_socket(original: Callable[..., Any]) -> Callable[..., Any]:
    """``SSLContext.wrap_socket`` that sends userspace sockets to multisock's SSLSocket."""

    @functools.wraps(original)
    def wrap_socket(self: Any, sock: Any, server_side: bool = False,
                    do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                    server_hostname: str | bytes | None = None, session: Any = None) -> Any:
        if is_userspace_stream(sock):
            return sslsocket_class_for(self)._create(
                sock, server_side=server_side, do_handshake_on_connect=do_handshake_on_connect,
                suppress_ragged_eofs=suppress_ragged_eofs, server_hostname=server_hostname,
                context=self, session=session,
            )
        return original(self, sock, server_side=server_side,
                        do_handshake_on_connect=do_handshake_on_connect,
                        suppress_ragged_eofs=suppress_ragged_eofs,
                        server_hostname=server_hostname, session=session)

    wrap_socket.multisock_hook = True  # type: ignore[attr-defined]
    return wrap_socket
