"""The in-process virtual network: hosts, links, impairments, capture, driver.

One thing here points up. :meth:`Host.socket` hands out the facade's sockets
(``multisock.socket.socket``), a layer above this one; net does not import the facade but
calls :data:`socket_factory`, which the package's root (``multisock/__init__.py``) fills
in when ``multisock`` is imported - before any module of net can be - with a function that
loads the facade on first use (so that neither ``import multisock`` nor a network that
never opens a socket pays for it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (family, type, proto, fileno=None, *, host=None) -> a multisock.socket.socket
socket_factory: Callable[..., Any] | None = None
# (network, **options) -> a multisock.gateway.Gateway: the gateway sits above net, so
# ``Network.add_gateway`` reaches it through this slot, filled by the root like the one above
gateway_factory: Callable[..., Any] | None = None
