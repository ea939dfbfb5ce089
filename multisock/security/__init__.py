"""Security on hosts and routers: conntrack, a stateful firewall, NAT, detectors, IDS/IPS.

It plugs into ``IPStack``'s hook points (``multisock/stack/hooks.py``) and nowhere else.
``Host.security`` (a :class:`Security`) is made on first use; ``Host.firewall`` and
``Host.nat`` are its parts. See ``docs/security.md``.
"""

from multisock.security.core import Security
from multisock.security.events import Event

__all__ = ["Security", "Event"]
