"""multisock: Python's socket module, backed by a TCP/IP stack written in Python.

``multisock.Network`` builds an in-process virtual network (hosts, links with
impairments, switches, routers, pcap capture); ``host.socket()`` gives sockets
that live on a virtual host, with the stdlib ``socket`` API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multisock import net as _net

__version__ = "0.1.0"
__all__ = ["Network", "Host", "Link", "Switch", "COMPILED", "__version__"]

if TYPE_CHECKING:
    from multisock.net.host import Host
    from multisock.net.link import Link
    from multisock.net.network import Network
    from multisock.net.switch import Switch

    COMPILED: bool  # the compiled build is running (``_compiled``)


def _compiled() -> bool:
    """Is the compiled build running? True when the stack's modules were really loaded as C
    extensions (``MULTISOCK_COMPILE=1 pip install .``, mypyc), read from the loaded modules
    themselves rather than from a flag written at build time."""
    from importlib.machinery import EXTENSION_SUFFIXES

    from multisock.stack import ip
    from multisock.stack.tcp import connection
    from multisock.wire import tcp

    return all(m.__file__ is not None and m.__file__.endswith(tuple(EXTENSION_SUFFIXES))
               for m in (ip, connection, tcp))


def __getattr__(name: str) -> Any:
    """Lazy: ``import multisock`` stays cheap until a network is actually built."""
    if name == "COMPILED":
        globals()["COMPILED"] = value = _compiled()
        return value
    if name == "Network":
        from multisock.net.network import Network

        return Network
    if name == "Host":
        from multisock.net.host import Host

        return Host
    if name == "Link":
        from multisock.net.link import Link

        return Link
    if name == "Switch":
        from multisock.net.switch import Switch

        return Switch
    raise AttributeError(f"module 'multisock' has no attribute {name!r}")


def _facade_socket(*args: Any, **kwargs: Any) -> Any:
    """``Host.socket()``'s factory: the facade's class, imported on first use.

    The root wires the facade into the network layer (``multisock.net.socket_factory``)
    so that net never imports the layer above it; see ``docs/architecture.md``."""
    from multisock.socket import socket

    return socket(*args, **kwargs)


_net.socket_factory = _facade_socket


def _gateway(*args: Any, **kwargs: Any) -> Any:
    """``Network.add_gateway()``'s factory: the gateway layer, imported on first use."""
    from multisock.gateway import Gateway

    return Gateway(*args, **kwargs)


_net.gateway_factory = _gateway
