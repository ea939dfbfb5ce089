"""Shared openings for the RACK-TLP, PRR and undo scripts: an active open whose handshake
takes a known round trip (so min_rtt, SRTT and the RTO are known numbers), then a flight.

Times are multiples of 1/8 s (exact in binary floating point), so that "one RTT later"
is exactly one RTT later and RACK's comparisons of send times and RTTs are not at the
mercy of rounding.
"""

from __future__ import annotations

from tcpscript import Script

from multisock.stack.tcp import TcpConfig, TcpSocket

RTT = 0.125
MSS = 1000


def opened(
    congestion: str = "cubic", *, sack: bool = True, timestamps: bool = False, **config: object
) -> tuple[Script, TcpSocket]:
    """A connection whose SYN-ACK came back after ``RTT``: srtt = min_rtt = RTT."""
    s = Script(TcpConfig(quickack_segments=0, congestion=congestion, **config))
    sock = s.connect()
    s.pop()
    s.advance(RTT)
    # (timestamps take 12 bytes of each segment: offer that much more, segments stay MSS)
    opts = f"mss {MSS + 12 if timestamps else MSS}" + (",sackOK" if sack else "")
    if timestamps:
        opts += ",TS val 1 ecr *"
    s.inject(f"S. 0:0(0) ack 1 win 65535 <{opts}>")
    s.pop()
    sock.nodelay = True
    return s, sock


def flight(
    segments: int,
    queued: int = 0,
    congestion: str = "cubic",
    *,
    sack: bool = True,
    timestamps: bool = False,
    **config: object,
) -> tuple[Script, TcpSocket, list[int]]:
    """``segments`` full segments sent at once (``queued`` more wait for the window);
    returns the script, the socket and the TSvals of the segments (timestamps only)."""
    s, sock = opened(congestion, sack=sack, timestamps=timestamps, **config)
    total = (segments + queued) * MSS
    assert sock.send(b"d" * total, s.now) == total
    tsvals = []
    for i in range(segments):
        hdr, payload = s.pop()
        assert len(payload) == MSS
        assert (hdr.seq - (s.local_isn or 0)) & 0xFFFFFFFF == 1 + i * MSS
        tsvals.append(hdr.ts_val or 0)
    s.expect_none()
    return s, sock, tsvals


def sacked(s: Script, high: int, ack: int = 1, extra: str = "") -> None:
    """An ACK of ``ack`` SACKing 1001:high (segment 1 missing), as a receiver sends it."""
    s.inject(f". 1:1(0) ack {ack} win 65535 <sack 1001:{high}{extra}>")


def armed_in(s: Script, sock: TcpSocket) -> float:
    """When the retransmission timer's slot (RTO, PTO or RACK's) fires, from now (the
    stack's timer heap may still hold an earlier entry that is no longer current)."""
    assert sock.t_rexmit is not None
    return sock.t_rexmit - s.now


def cwnd_ssthresh(sock: TcpSocket) -> tuple[int, int]:
    info = sock.info()
    return info["snd_cwnd"], info["snd_ssthresh"]
