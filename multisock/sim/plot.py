"""Pictures of a run (the optional extra ``[plot]``: matplotlib).

* :func:`scenario_plots`: goodput over time per flow, cwnd over time per flow, queue
  occupancy per rate-limited link direction - from a run's sampled metrics.
* :func:`pcap_time_sequence`: tcptrace's time-sequence graph of every TCP connection in a
  pcap (ours: raw IP; the kernel's: Ethernet or Linux cooked capture): data segments as
  vertical bars from seq to seq+len (retransmissions in red), the ACK line and the
  receive window's right edge from the other direction.

The parsing part (:func:`read_pcap`, :func:`time_sequence`) needs no matplotlib, so it is
tested without it; only drawing imports matplotlib, with the Agg backend (no display).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from multisock.stack import addresses as A
from multisock.wire import ipv4, ipv6, tcp
from multisock.wire.errors import MalformedPacket

if TYPE_CHECKING:
    from multisock.sim.scenario import Results


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed (the ``[plot]`` extra)."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("plots need matplotlib: pip install 'multisock[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------ scenario


def scenario_plots(results: Results, out_dir: str) -> list[str]:
    """throughput.png, cwnd.png and queue.png from a run's series; the paths written."""
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    written = []
    flows: dict[str, list[dict[str, Any]]] = {}
    for row in results.flows:
        flows.setdefault(row["flow"], []).append(row)
    for key, ylabel, scale, filename in (
            ("goodput_bps", "goodput (Mbit/s)", 1e-6, "throughput.png"),
            ("cwnd", "cwnd (bytes)", 1.0, "cwnd.png")):
        if not flows:
            break
        fig, ax = plt.subplots(figsize=(8, 4))
        for label, rows in flows.items():
            ax.plot([r["t"] for r in rows], [r[key] * scale for r in rows], label=label)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(ylabel)
        ax.legend(loc="best", fontsize="small")
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, plt, out_dir, filename))
    queues: dict[str, list[dict[str, Any]]] = {}
    for row in results.links:
        if row["utilisation"] is not None:
            queues.setdefault(f"{row['link']} {row['direction']}", []).append(row)
    if queues:
        fig, ax = plt.subplots(figsize=(8, 4))
        for label, rows in queues.items():
            ax.step([r["t"] for r in rows], [r["queue"] for r in rows], where="post",
                    label=label)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("queue (packets)")
        ax.legend(loc="best", fontsize="small")
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, plt, out_dir, "queue.png"))
    return written


def _save(fig: Any, plt: Any, out_dir: str, name: str) -> str:
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- pcap

_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_MAGICS = {0xA1B2C3D4: ("<", 1e-6), 0xD4C3B2A1: (">", 1e-6), 0xA1B23C4D: ("<", 1e-9),
           0x4D3CB2A1: (">", 1e-9)}


def read_pcap(path: str) -> Iterator[tuple[float, bytes]]:
    """(timestamp, IP packet) for each record of a classic pcap file: raw IP (ours),
    Ethernet, Linux cooked v1/v2 or BSD loopback. Non-IP frames are skipped."""
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            raise ValueError(f"{path}: not a pcap file (too short)")
        magic = struct.unpack("<I", head[:4])[0]
        if magic not in _MAGICS:
            raise ValueError(f"{path}: not a classic pcap file (pcapng is not read; "
                             "convert with editcap -F pcap)")
        order, unit = _MAGICS[magic]
        linktype = struct.unpack(order + "I", head[20:24])[0] & 0xFFFF
        record = struct.Struct(order + "IIII")
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, caplen, _length = record.unpack(rec)
            frame = f.read(caplen)
            packet = _ip_of(frame, linktype)
            if packet is not None:
                yield sec + frac * unit, packet


def _ip_of(frame: bytes, linktype: int) -> bytes | None:
    if linktype in (101, 12, 228, 229):  # raw IP
        return frame
    if linktype == 1:  # Ethernet, possibly one VLAN tag
        offset, ethertype = 14, frame[12:14]
        if ethertype == b"\x81\x00":
            offset, ethertype = 18, frame[16:18]
        return frame[offset:] if ethertype in (b"\x08\x00", b"\x86\xdd") else None
    if linktype == 113:  # Linux cooked v1
        return frame[16:] if frame[14:16] in (b"\x08\x00", b"\x86\xdd") else None
    if linktype == 276:  # Linux cooked v2
        return frame[20:] if frame[0:2] in (b"\x08\x00", b"\x86\xdd") else None
    if linktype == 0:  # BSD loopback
        return frame[4:]
    return None


class Direction:
    """One direction of one connection, as the graph needs it (sequence numbers relative
    to the first one seen, unwrapped)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.isn: int | None = None
        self.wscale = 0
        self.data: list[tuple[float, int, int, bool]] = []  # t, start, end, retransmission
        self.acks: list[tuple[float, int, int]] = []  # t, ack, right edge of window
        self.highest = 0

    def rel(self, seq: int) -> int:
        assert self.isn is not None
        return (seq - self.isn) % (1 << 32)


def time_sequence(packets: Iterator[tuple[float, bytes]]) -> dict[str, Direction]:
    """Every TCP connection direction in ``packets`` with its data segments and the ACKs
    and windows the other end sent about them, keyed ``"src:port > dst:port"``."""
    directions: dict[str, Direction] = {}
    origin: float | None = None
    for when, packet in packets:
        try:
            if packet[0] >> 4 == 4:
                header, payload = ipv4.parse(packet, verify_checksum=False)
                if header.proto != 6 or header.frag_offset:
                    continue
                src, dst = header.src, header.dst
            elif packet[0] >> 4 == 6:
                header6, payload = ipv6.parse(packet)
                if header6.next_header != 6:
                    continue
                src, dst = header6.src, header6.dst
            else:
                continue
            seg, data = tcp.parse(payload)
        except (MalformedPacket, IndexError):
            continue
        origin = when if origin is None else origin
        t = when - origin
        forward = f"{A.unpack(src)}:{seg.src_port} > {A.unpack(dst)}:{seg.dst_port}"
        reverse = f"{A.unpack(dst)}:{seg.dst_port} > {A.unpack(src)}:{seg.src_port}"
        mine = directions.setdefault(forward, Direction(forward))
        syn = seg.flags & 0x02
        if mine.isn is None or syn:
            mine.isn = seg.seq + (1 if syn else 0)
            if syn and seg.wscale is not None:
                mine.wscale = seg.wscale
        if data and mine.isn is not None:
            start = mine.rel(seg.seq)
            end = start + len(data)
            mine.data.append((t, start, end, end <= mine.highest))
            mine.highest = max(mine.highest, end)
        other = directions.get(reverse)
        if seg.flags & 0x10 and other is not None and other.isn is not None:
            ack = other.rel(seg.ack)
            window = seg.window << (mine.wscale if not syn else 0)
            other.acks.append((t, ack, ack + window))
    return directions


def pcap_time_sequence(path: str, out_dir: str) -> list[str]:
    """One time-sequence PNG per connection direction that carried data; paths written."""
    directions = time_sequence(read_pcap(path))
    carrying = [d for d in directions.values() if d.data]
    if not carrying:
        return []
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for index, direction in enumerate(carrying):
        fig, ax = plt.subplots(figsize=(9, 5))
        fresh = [(t, s, e) for t, s, e, again in direction.data if not again]
        again = [(t, s, e) for t, s, e, again in direction.data if again]
        for points, colour, label in ((fresh, "black", "data"),
                                      (again, "red", "retransmission")):
            if points:
                ax.vlines([p[0] for p in points], [p[1] for p in points],
                          [p[2] for p in points], colors=colour, linewidth=1.5, label=label)
        if direction.acks:
            ax.step([a[0] for a in direction.acks], [a[1] for a in direction.acks],
                    where="post", color="green", linewidth=0.8, label="ack")
            ax.step([a[0] for a in direction.acks], [a[2] for a in direction.acks],
                    where="post", color="goldenrod", linewidth=0.8, label="receive window")
        ax.set_title(direction.label)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("relative sequence number (bytes)")
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(True, alpha=0.3)
        safe = direction.label.replace(" > ", "_to_").replace(":", "_")
        written.append(_save(fig, plt, out_dir, f"tseq-{index}-{safe}.png"))
    return written
