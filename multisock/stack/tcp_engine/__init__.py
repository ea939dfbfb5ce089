"""The TCP engine (sans-IO): RFC 9293 state machine, SACK recovery, CUBIC/Reno, SYN cookies.

``TcpStack`` is one host's TCP layer (demux, ports, listeners, timers); ``TcpSocket``
is one control block; ``TcpConfig`` holds the tunables; ``TcpState`` the states.
"""

from multisock.stack.tcp_engine.config import TcpConfig, TcpState
from multisock.stack.tcp_engine.control import TcpSocket
from multisock.stack.tcp_engine.stack import TcpStack

__all__ = ["TcpConfig", "TcpSocket", "TcpStack", "TcpState"]
