"""Introspection: a TCP_INFO-like dict per connection and an ``ss -tni``-like table."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

from multisock.stack.addresses import unpack
from multisock.stack.tcp.timewait import TimeWait

if TYPE_CHECKING:
    from multisock.stack.tcp.connection import TcpSocket
    from multisock.stack.tcp.stack import TcpStack


# what a row needs from a control block, in this order (``_block`` reads them); the RTO is
# worked out from the estimator's fields when the row is built
BLOCK_FIELDS = (
    "state._name_", "in_recovery", "snd_una", "snd_nxt", "snd_max", "lost_end", "rxt_next",
    "retries", "probes", "ts_ok", "sack_ok", "ws_ok", "snd_wscale", "rcv_wscale", "mss",
    "rcv_mss", "adv_mss", "congestion", "snd_wnd", "rcv_adv", "rcv_nxt", "rcvbuf",
    "total_retrans", "bytes_sent", "bytes_retrans", "bytes_acked", "bytes_received",
    "segs_out", "segs_in", "data_segs_out", "data_segs_in", "ooo_dropped", "dupacks", "error",
    "local", "remote",
    "rtt.backoff", "rtt.srtt", "rtt.rttvar", "rtt.min_rtt", "rtt.latest", "rtt.rto",
    "rtt.rto_max", "board.sacked", "sndq.size", "recvq.size", "ooo.size",
)
# positions in BLOCK_FIELDS
_LOCAL: Final = 34
_SNDQ: Final = 44
_RECVQ: Final = 45


def _block(sock: TcpSocket) -> tuple[Any, ...]:
    """BLOCK_FIELDS of ``sock``, read one by one: every closed connection pays this, and
    compiled (mypyc) each read is a field load, where ``operator.attrgetter`` over the
    names looked each one up by name (tests/tcp/test_tcp_info.py checks the order)."""
    rtt = sock.rtt
    return (
        sock.state._name_, sock.in_recovery, sock.snd_una, sock.snd_nxt, sock.snd_max,
        sock.lost_end, sock.rxt_next, sock.retries, sock.probes, sock.ts_ok, sock.sack_ok,
        sock.ws_ok, sock.snd_wscale, sock.rcv_wscale, sock.mss, sock.rcv_mss, sock.adv_mss,
        sock.congestion, sock.snd_wnd, sock.rcv_adv, sock.rcv_nxt, sock.rcvbuf,
        sock.total_retrans, sock.bytes_sent, sock.bytes_retrans, sock.bytes_acked,
        sock.bytes_received, sock.segs_out, sock.segs_in, sock.data_segs_out,
        sock.data_segs_in, sock.ooo_dropped, sock.dupacks, sock.error, sock.local, sock.remote,
        rtt.backoff, rtt.srtt, rtt.rttvar, rtt.min_rtt, rtt.latest, rtt.rto, rtt.rto_max,
        sock.board.sacked, sock.sndq.size, sock.recvq.size, sock.ooo.size,
    )


_CC: Final = attrgetter("cwnd", "ssthresh", "name")
_NO_CC: Final = (0, 0, None)
# RACK's counters that struct tcp_info has fields for (tcpi_reord_seen, tcpi_dsack_dups);
# the others (probes, RACK losses, undos) are the stack's counters
_RACK: Final = attrgetter("reord_seen", "dsack_dups")
_NO_RACK: Final = (0, 0)

#: a control block's numbers at one moment: plain values only (no references to the
#: block's parts, and untracked by the garbage collector once it has looked at it once)
Snapshot = tuple[tuple[Any, ...], tuple[Any, ...], tuple[int, int]]


def snapshot(sock: TcpSocket) -> Snapshot:
    """What ``socket_info``/``connection_row`` report, taken cheaply: a finished
    connection's row is built only if somebody reads ``TcpStack.history``."""
    cc = sock.cc
    rack = sock.rack
    return (
        _block(sock),
        _CC(cc) if cc is not None else _NO_CC,
        _RACK(rack) if rack is not None else _NO_RACK,
    )


def socket_info(sock: TcpSocket) -> dict[str, Any]:
    """Field names follow Linux's ``struct tcp_info`` (times in seconds, sizes in bytes)."""
    return info_from(snapshot(sock))


def info_from(snap: Snapshot) -> dict[str, Any]:
    """The TCP_INFO-like dict of a snapshot."""
    block, cc, (reord_seen, dsack_dups) = snap
    (state, in_recovery, snd_una, snd_nxt, snd_max, lost_end, rxt_next, retries, probes,
     ts_ok, sack_ok, ws_ok, snd_wscale, rcv_wscale, mss, rcv_mss, adv_mss, congestion,
     snd_wnd, rcv_adv, rcv_nxt, rcvbuf, total_retrans, bytes_sent, bytes_retrans,
     bytes_acked, bytes_received, segs_out, segs_in, data_segs_out, data_segs_in,
     ooo_dropped, dupacks, error, _local, _remote, backoff, srtt, rttvar, min_rtt, latest,
     base_rto, rto_max, sacked, sndq_size, recvq_size, ooo_size) = block
    cwnd, ssthresh, cc_name = cc
    rto = min(base_rto * (1 << backoff), rto_max)  # (RttEstimator.current())
    in_flight = max(snd_max - snd_una, 0)
    lost = 0
    if in_recovery and lost_end > snd_una:
        lost = max(lost_end - max(rxt_next, snd_una), 0)
    return {
        "state": state,
        "ca_state": "recovery" if in_recovery else ("loss" if snd_nxt < snd_max else "open"),
        "retransmits": retries,
        "probes": probes,
        "backoff": backoff,
        "options": {"timestamps": ts_ok, "sack": sack_ok, "wscale": ws_ok},
        "snd_wscale": snd_wscale,
        "rcv_wscale": rcv_wscale,
        "rto": rto,
        "rtt": srtt or 0.0,
        "rttvar": rttvar,
        "min_rtt": min_rtt,
        "last_rtt": latest,
        "snd_mss": mss,
        "rcv_mss": rcv_mss,
        "advmss": adv_mss,
        "unacked": in_flight,
        "sacked": sacked,
        "lost": lost,
        "snd_cwnd": cwnd,
        "snd_ssthresh": ssthresh,
        "congestion": cc_name if cc_name is not None else congestion,
        "snd_wnd": snd_wnd,
        "rcv_wnd": max(rcv_adv - rcv_nxt, 0),
        "rcv_space": rcvbuf - recvq_size,
        "total_retrans": total_retrans,
        "bytes_sent": bytes_sent,
        "bytes_retrans": bytes_retrans,
        "bytes_acked": bytes_acked,
        "bytes_received": bytes_received,
        "segs_out": segs_out,
        "segs_in": segs_in,
        "data_segs_out": data_segs_out,
        "data_segs_in": data_segs_in,
        "notsent_bytes": max(sndq_size - in_flight, 0),
        "recv_queue": recvq_size,
        "ooo_bytes": ooo_size,
        "ooo_dropped": ooo_dropped,
        "dupacks": dupacks,
        "reord_seen": reord_seen,
        "dsack_dups": dsack_dups,
        "error": error,
    }


def row_from(snap: Snapshot) -> dict[str, Any]:
    """A connection's table row from a snapshot of it."""
    block = snap[0]
    return {
        "state": block[0],
        "recv_q": block[_RECVQ],
        "send_q": block[_SNDQ],
        "local": _endpoint(block[_LOCAL]),
        "remote": _endpoint(block[_LOCAL + 1]),
        "info": info_from(snap),
    }


class History:
    """The last ``maxlen`` finished connections' rows (``TcpStack.history``), kept as
    snapshots: a row (two dicts of ~45 entries) is built only when it is read, which in
    a busy server is never (``multisock run --stats`` reads them at exit)."""

    __slots__ = ("_snaps",)

    def __init__(self, maxlen: int) -> None:
        self._snaps: deque[Snapshot] = deque(maxlen=maxlen)

    def record(self, sock: TcpSocket) -> None:
        self._snaps.append(snapshot(sock))

    def __len__(self) -> int:
        return len(self._snaps)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (row_from(snap) for snap in tuple(self._snaps))

    def __getitem__(self, index: int) -> dict[str, Any]:
        return row_from(self._snaps[index])


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
    for conn in stack.conns.values():
        rows.append(connection_row(conn))
    return rows


def connection_row(sock: TcpSocket | TimeWait) -> dict[str, Any]:
    """One connection's row of the table (also kept in ``stack.history`` once it ends).

    A TIME-WAIT record (closed by its application) has no TCP_INFO left, as ``ss -ti``
    shows none for such sockets: its control block's last row went to the history when
    the record replaced it."""
    if isinstance(sock, TimeWait):
        return {"state": sock.state.name, "recv_q": 0, "send_q": 0,
                "local": _endpoint(sock.local), "remote": _endpoint(sock.remote), "info": None}
    return row_from(snapshot(sock))


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
