"""Introspection: a TCP_INFO-like dict per connection and an ``ss -tni``-like table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multisock.stack.addresses import unpack

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket
    from multisock.stack.tcp.stack import TcpStack


def socket_info(sock: TcpSocket) -> dict[str, Any]:
    """Field names follow Linux's ``struct tcp_info`` (times in seconds, sizes in bytes)."""
    cc = sock.cc
    rtt = sock.rtt
    in_flight = max(sock.snd_max - sock.snd_una, 0)
    lost = 0
    if sock.in_recovery and sock.lost_end > sock.snd_una:
        lost = max(sock.lost_end - max(sock.rxt_next, sock.snd_una), 0)
    return {
        "state": sock.state.name,
        "ca_state": "recovery"
        if sock.in_recovery
        else ("loss" if sock.snd_nxt < sock.snd_max else "open"),
        "retransmits": sock.retries,
        "probes": sock.probes,
        "backoff": rtt.backoff,
        "options": {"timestamps": sock.ts_ok, "sack": sock.sack_ok, "wscale": sock.ws_ok},
        "snd_wscale": sock.snd_wscale,
        "rcv_wscale": sock.rcv_wscale,
        "rto": rtt.current(),
        "rtt": rtt.srtt or 0.0,
        "rttvar": rtt.rttvar,
        "min_rtt": rtt.min_rtt,
        "last_rtt": rtt.latest,
        "snd_mss": sock.mss,
        "rcv_mss": sock.rcv_mss,
        "advmss": sock.adv_mss,
        "unacked": in_flight,
        "sacked": sock.board.sacked,
        "lost": lost,
        "snd_cwnd": cc.cwnd if cc is not None else 0,
        "snd_ssthresh": cc.ssthresh if cc is not None else 0,
        "congestion": cc.name if cc is not None else sock.congestion,
        "snd_wnd": sock.snd_wnd,
        "rcv_wnd": max(sock.rcv_adv - sock.rcv_nxt, 0),
        "rcv_space": sock.rcvbuf - sock.recvq.size,
        "total_retrans": sock.total_retrans,
        "bytes_sent": sock.bytes_sent,
        "bytes_retrans": sock.bytes_retrans,
        "bytes_acked": sock.bytes_acked,
        "bytes_received": sock.bytes_received,
        "segs_out": sock.segs_out,
        "segs_in": sock.segs_in,
        "data_segs_out": sock.data_segs_out,
        "data_segs_in": sock.data_segs_in,
        "notsent_bytes": max(sock.sndq.size - in_flight, 0),
        "recv_queue": sock.recvq.size,
        "ooo_bytes": sock.ooo.size,
        "ooo_dropped": sock.ooo_dropped,
        "dupacks": sock.dupacks,
        "error": sock.error,
    }


def _endpoint(value: tuple[bytes, int] | None) -> str:
    if value is None:
        return "*:*"
    addr, port = value
    text = unpack(addr) if any(addr) else "*"
    return f"[{text}]:{port}" if len(addr) == 16 else f"{text}:{port}"


def connection_table(stack: TcpStack) -> list[dict[str, Any]]:
    """Listeners then connections, each row: state, queues, endpoints and TCP_INFO."""
    rows: list[dict[str, Any]] = []
    for group in stack.listeners.values():
        for sock in group:
            rows.append(
                {
                    "state": sock.state.name,
                    "recv_q": len(sock.accept_queue),
                    "send_q": sock.backlog,
                    "local": _endpoint(sock.local),
                    "remote": "*:*",
                    "info": None,
                }
            )
    for sock in stack.conns.values():
        rows.append(connection_row(sock))
    return rows


def connection_row(sock: TcpSocket) -> dict[str, Any]:
    """One connection's row of the table (also kept in ``stack.history`` once it ends)."""
    return {
        "state": sock.state.name,
        "recv_q": sock.recvq.size,
        "send_q": sock.sndq.size,
        "local": _endpoint(sock.local),
        "remote": _endpoint(sock.remote),
        "info": socket_info(sock),
    }


def format_table(stack: TcpStack) -> str:
    """Text like ``ss -tni``: one line per socket, then an indented info line."""
    lines = [f"{'State':<12} {'Recv-Q':>7} {'Send-Q':>7} {'Local':<24} {'Peer':<24}"]
    for row in connection_table(stack):
        lines.append(
            f"{row['state']:<12} {row['recv_q']:>7} {row['send_q']:>7} "
            f"{row['local']:<24} {row['remote']:<24}"
        )
        info = row["info"]
        if info:
            lines.append(
                f"\t {info['congestion']} rto:{info['rto'] * 1000:.0f} "
                f"rtt:{info['rtt'] * 1000:.3f}/{info['rttvar'] * 1000:.3f} mss:{info['snd_mss']} "
                f"cwnd:{info['snd_cwnd'] // max(info['snd_mss'], 1)} "
                f"bytes_sent:{info['bytes_sent']} bytes_acked:{info['bytes_acked']} "
                f"bytes_received:{info['bytes_received']} retrans:{info['retransmits']}/"
                f"{info['total_retrans']}"
            )
    return "\n".join(lines)
