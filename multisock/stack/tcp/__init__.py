"""The TCP engine (sans-IO): RFC 9293 connections, options, recovery, demux.

Layout: ``connection`` (the control block and its state machine), ``stack``
(demux, listeners, SYN cookies), ``ports`` (bind rules), ``buffers``, ``sack``,
``rtt``, ``timers``, ``isn``, ``seq``, ``info``; ``congestion`` is pluggable.
"""

from multisock.stack.tcp.config import TcpConfig, TcpState
from multisock.stack.tcp.connection import TcpSocket
from multisock.stack.tcp.stack import TcpHost, TcpStack

__all__ = ["TcpConfig", "TcpHost", "TcpSocket", "TcpStack", "TcpState"]
