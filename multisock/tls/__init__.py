"""TLS over userspace sockets: ``ssl`` on top of multisock's TCP.

``channel`` drives OpenSSL through memory BIOs over a userspace stream;
``sslsocket`` is the ``ssl.SSLSocket`` subclass programs get back;
``patch`` holds the hooks ``multisock.monkey.patch_ssl()`` installs.
"""

from multisock.tls.sslsocket import SSLSocket, is_userspace_stream

__all__ = ["SSLSocket", "is_userspace_stream"]
