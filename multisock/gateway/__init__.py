"""The host gateway: virtual hosts reach real services, and real clients reach them.

slirp4netns/passt's model: the userspace stack terminates each flow and the gateway relays
it through an ordinary kernel socket (``_socket``, never multisock's facade). No root, no
TUN. See docs/gateway.md.
"""

from __future__ import annotations

from multisock.gateway.node import Gateway

__all__ = ["Gateway"]
