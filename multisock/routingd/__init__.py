"""Routing daemons: RIPv2 (OSPFv2 to come) as programs over the virtual routers' own UDP sockets.

Each daemon is what ``ripd``/``ospfd`` are to a Linux router: a program (a thread here)
that talks to its neighbours through ordinary sockets and writes what it learns into the
host's routing table; the IP layer knows nothing about it. Time is the network's clock
(``Driver.now``), so the daemons speed up with virtual time like everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multisock.net.host import Host
    from multisock.routingd.common import Daemon


def start_daemon(host: Host, protocol: str, options: dict[str, Any] | None = None) -> Daemon:
    """Start ``protocol`` ("rip") on ``host`` with the given timer options."""
    options = dict(options or {})
    if protocol == "rip":
        from multisock.routingd.rip import RipDaemon

        daemon: Daemon = RipDaemon(host, **options)
    else:
        raise ValueError(f"unknown routing protocol {protocol!r} (rip; ospf is not written yet)")
    daemon.start()
    return daemon
