"""``host.security``: one object per IP stack that joins the parts and plugs them into its hooks.

Per packet, at INPUT, FORWARD and OUTPUT (one hook each, so the packet is read once)::

    read the Flow (malformed: counted, dropped) -> blocklist -> conntrack -> detectors
        -> the firewall's chain -> the IDS

NAT has its own two hooks at PRE_ROUTING and POST_ROUTING (``nat.py``). A hook is in the
stack only while something needs it: the firewall once a chain has a rule or a drop
policy, conntrack once a rule matches on state or the IDS or a detector runs. With nothing
configured the stack has no hooks at all, and its fast paths run as before (so accessing
``host.firewall`` costs nothing).

Time is ``ip.now``, the stack's clock of the operation in progress (set by the driver's
entry points); nothing here reads a clock.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from multisock.security.conntrack import NEW, ConnTrack
from multisock.security.detect import Blocklist, ScanDetector, SynFloodDetector
from multisock.security.events import Event, EventLog
from multisock.security.firewall import ACCEPT, DROP, Firewall
from multisock.security.flow import ACK, FIN, RST, SYN, TCP, Flow, parse
from multisock.security.rules import REJECT_KINDS
from multisock.stack import hooks as H
from multisock.wire import icmpv4, icmpv6, ipv4, ipv6

if TYPE_CHECKING:
    from multisock.security.ids import Ids
    from multisock.security.nat import Nat
    from multisock.stack.ip import IPStack

_ACK_FIELD = struct.Struct("!I")
_TCP_RST = struct.Struct("!HHIIBBHHH")
_FRAGMENT_MEMORY = 4096  # first-fragment verdicts kept for the fragments that follow


class Security:
    """Conntrack, firewall, NAT, detectors and IDS of one IP stack."""

    def __init__(self, ip: IPStack, lock: AbstractContextManager[Any] | None = None) -> None:
        self.ip = ip
        self.lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.log = EventLog()
        self.counters = {"malformed": 0, "blocked": 0, "table_full": 0, "rejects_sent": 0,
                         "rejects_limited": 0, "fragments_dropped": 0, "ids_dropped": 0}
        self._conntrack: ConnTrack | None = None
        self._conntrack_forced = False
        self._firewall: Firewall | None = None
        self._nat: Nat | None = None
        self._ids: Ids | None = None
        self.scan: ScanDetector | None = None
        self.synflood: SynFloodDetector | None = None
        self.blocklist = Blocklist()
        # what the per-packet path reads (kept flat: one attribute each)
        self._ct: ConnTrack | None = None
        self._fw: dict[str, Any] = dict.fromkeys(("input", "output", "forward"))
        self._detecting = False
        self._hooked: dict[str, H.Hook] = {}
        self._fragments: dict[tuple[bytes, bytes, int, int], int] = {}

    # ------------------------------------------------------------------ parts

    @property
    def firewall(self) -> Firewall:
        if self._firewall is None:
            self._firewall = Firewall(self._sync, self._reject, self._log_rule, self.lock)
        return self._firewall

    @property
    def conntrack(self) -> ConnTrack:
        """The table (created on first use; tracking runs only while something needs it)."""
        if self._conntrack is None:
            self._conntrack = ConnTrack()
        return self._conntrack

    def enable_conntrack(self, max_entries: int | None = None, *, loose: bool = True) -> None:
        """Track connections even when no rule asks (``conntrack -L`` on a host)."""
        with self.lock:
            table = self.conntrack
            if max_entries is not None:
                if max_entries < 1:
                    raise ValueError("max_entries must be positive")
                table.max_entries = max_entries
            table.loose = loose
            self._conntrack_forced = True
            self._sync()

    @property
    def nat(self) -> Nat:
        if self._nat is None:
            from multisock.security.nat import Nat

            self._nat = Nat(self.ip, self._sync_nat, self.lock)
        return self._nat

    def load_rules(self, source: str) -> int:
        """IDS/IPS rules (Snort/Suricata subset, ``ids.py``) from a file path or the text;
        returns how many were loaded. Replaces the rules loaded before."""
        from multisock.security.ids import Ids, load

        rules = load(source)
        with self.lock:
            self._ids = Ids(rules, self._emit) if rules else None
            self._sync()
        return len(rules)

    @property
    def ids(self) -> Ids | None:
        return self._ids

    # -------------------------------------------------------------- detection

    def detect_scans(self, *, ports: int = 20, hosts: int = 10, window: float = 5.0,
                     block_for: float | None = None) -> None:
        """Report a source probing ``ports`` distinct ports or ``hosts`` distinct hosts
        within ``window`` seconds; with ``block_for``, drop its packets for that long."""
        with self.lock:
            self.scan = ScanDetector(self._emit, ports=ports, hosts=hosts, window=window,
                                     block_for=block_for)
            self._sync()

    def detect_syn_flood(self, *, rate: float = 200.0, window: float = 1.0) -> None:
        """Report more than ``rate`` SYNs per second towards one address and port."""
        with self.lock:
            self.synflood = SynFloodDetector(self._emit, self._cookies_sent, rate=rate,
                                             window=window)
            self._sync()

    def stop_detection(self) -> None:
        with self.lock:
            self.scan = self.synflood = None
            self._sync()

    def block(self, address: str, seconds: float) -> None:
        from multisock.stack import addresses as A

        with self.lock:
            self.blocklist.add(A.pack(address), self.ip.now + seconds)
            self._sync()

    def unblock(self, address: str) -> None:
        from multisock.stack import addresses as A

        with self.lock:
            self.blocklist.until.pop(A.pack(address), None)

    def events(self, kind: str | None = None) -> list[Event]:
        """The events kept so far (the newest 10000), oldest first."""
        return [e for e in list(self.log.ring) if kind is None or e.kind == kind]

    def on_event(self, callback: Callable[[Event], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for each new event (driver lock held: be quick); returns
        a function that unsubscribes it."""
        self.log.callbacks.append(callback)
        return lambda: self.log.callbacks.remove(callback)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"security": dict(self.counters), "hooks": sorted(self._hooked)}
        if self._conntrack is not None:
            out["conntrack"] = {**self._conntrack.counters, "entries": self._conntrack.count,
                                "max": self._conntrack.max_entries}
        if self._nat is not None:
            out["nat"] = dict(self._nat.counters)
        if self._ids is not None:
            out["ids"] = dict(self._ids.counters)
        out["events"] = {"emitted": self.log.emitted, "lost": self.log.lost}
        return out

    # ------------------------------------------------------------ the hooking

    def _sync(self) -> None:
        """(Un)plug the filter hooks after any change: only what is needed stays."""
        fw = self._firewall
        for chain in ("input", "output", "forward"):
            self._fw[chain] = fw.compiled[chain] if fw is not None else None
        detecting = self.scan is not None or self.synflood is not None
        self._detecting = detecting
        needs_ct = (self._conntrack_forced or self._ids is not None or detecting
                    or (fw is not None and fw.needs_conntrack))
        self._ct = self.conntrack if needs_ct else None
        inspect = needs_ct or bool(self.blocklist.until)
        want = {
            H.INPUT: inspect or self._fw["input"] is not None,
            H.FORWARD: inspect or self._fw["forward"] is not None,
            H.OUTPUT: needs_ct or self._fw["output"] is not None,
        }
        hooks = {H.INPUT: self._input, H.FORWARD: self._forward, H.OUTPUT: self._output}
        for point, needed in want.items():
            self._plug(point, hooks[point] if needed else None)

    def _sync_nat(self) -> None:
        nat = self._nat
        active = nat is not None and nat.active()
        self._plug(H.PRE_ROUTING, nat.pre_routing if active and nat is not None else None)
        self._plug(H.POST_ROUTING, nat.post_routing if active and nat is not None else None)

    def _plug(self, point: str, hook: H.Hook | None) -> None:
        current = self._hooked.get(point)
        if current is not None and hook is None:
            self.ip.remove_hook(point, current)
            del self._hooked[point]
        elif current is None and hook is not None:
            self.ip.add_hook(point, hook)
            self._hooked[point] = hook

    # -------------------------------------------------------- the packet path

    def _input(self, packet: H.Packet) -> int:
        return self._filter(packet, "input")

    def _output(self, packet: H.Packet) -> int:
        return self._filter(packet, "output")

    def _forward(self, packet: H.Packet) -> int:
        data = packet.data
        if data is None or len(packet.src) != 4 or not (data[6] & 0x3F or data[7]):
            return self._filter(packet, "forward")
        # an IPv4 fragment: the first one decides for those that follow (their ports are
        # in the first only); a later one whose first was not seen is dropped
        key = (packet.src, packet.dst, packet.proto, (data[4] << 8) | data[5])
        if data[6] & 0x1F or data[7]:
            verdict = self._fragments.get(key)
            if verdict is None:
                self.counters["fragments_dropped"] += 1
                return DROP
            return verdict
        verdict = self._filter(packet, "forward")
        fragments = self._fragments
        if len(fragments) >= _FRAGMENT_MEMORY:
            del fragments[next(iter(fragments))]
        fragments[key] = verdict
        return verdict

    def _filter(self, packet: H.Packet, chain: str) -> int:
        flow = parse(packet)
        if flow is None:
            self.counters["malformed"] += 1
            return DROP
        now = self.ip.now
        if chain != "output" and self.blocklist.until and self.blocklist.blocks(flow.src, now):
            self.counters["blocked"] += 1
            return DROP
        ct = 0
        conn = None
        direction = 0
        table = self._ct
        if table is not None:
            ct, conn, direction = table.track(flow, now)
            if conn is not None and conn.blocked:
                self.counters["ids_dropped"] += 1
                return DROP
            if direction < 0:
                self.counters["table_full"] += 1
                return DROP  # no room to track a new connection: as Linux, dropped
        if self._detecting and chain != "output":
            scan = self.scan
            if scan is not None and scan.see(flow, now) and scan.block_for:
                self.blocklist.add(flow.src, now + scan.block_for)
                self._sync()
            if self.synflood is not None:
                self.synflood.see(flow, now)
        fw = self._fw[chain]
        if fw is not None and fw(flow, ct, now) == DROP:
            return DROP
        ids = self._ids
        if ids is not None and ids.inspect(flow, conn, direction, ct, now) == DROP:
            self.counters["ids_dropped"] += 1
            return DROP
        return ACCEPT

    # ---------------------------------------------------------------- actions

    def _emit(self, kind: str, source: bytes, details: dict[str, Any]) -> None:
        self.log.emit(self.ip.now, kind, source, details)

    def _cookies_sent(self) -> int:
        tcp = self.ip.tcp
        return int(tcp.counters.get("syncookies_sent", 0)) if tcp is not None else 0

    def _log_rule(self, flow: Flow, prefix: str, chain: str) -> None:
        from multisock.stack import addresses as A

        self._emit("firewall_log", flow.src, {
            "prefix": prefix, "chain": chain, "proto": flow.proto, "dst": A.unpack(flow.dst),
            "sport": flow.sport, "dport": flow.dport, "flags": flow.flags, "len": flow.size,
            "iface": flow.iface})

    def _reject(self, flow: Flow, kind: str, chain: str) -> None:
        """Answer a rejected packet as Linux's REJECT does; never about an ICMP error, a
        RST, a fragment or a non-unicast packet, and ICMP answers are rate limited like
        the stack's own errors. In ``output`` a reject is a drop (the send fails, EPERM)."""
        if chain == "output" or flow.fragment or flow.inner is not None:
            return
        from multisock.stack import addresses as A

        src, dst = flow.src, flow.dst
        if A.is_multicast(dst) or A.is_v4_broadcast(dst) or A.is_wildcard(src) \
                or A.is_multicast(src):
            return
        ip = self.ip
        try:
            if kind == "tcp-reset":
                if flow.proto != TCP or flow.flags & RST:
                    return
                payload = flow.payload
                if flow.flags & ACK:
                    seq = _ACK_FIELD.unpack_from(payload, 8)[0]
                    header = _TCP_RST.pack(flow.dport, flow.sport, seq, 0, 0x50, RST, 0, 0, 0)
                else:
                    length = len(payload) - flow.data_offset + bool(flow.flags & SYN) \
                        + bool(flow.flags & FIN)
                    ack = (flow.seq + length) & 0xFFFFFFFF
                    header = _TCP_RST.pack(flow.dport, flow.sport, 0, ack, 0x50, RST | ACK,
                                           0, 0, 0)
                ip.output(dst, src, TCP, header, csum_offset=16)
                self.counters["rejects_sent"] += 1
                return
            if not ip.icmp_limiter.allow(ip.now):
                self.counters["rejects_limited"] += 1
                return
            code4, code6 = REJECT_KINDS[kind]
            own = dst if ip.is_local_address(dst) else b""
            body = bytes(flow.payload)
            if len(src) == 4:
                original = ipv4.build(src, dst, flow.proto, len(body)) + body
                message = icmpv4.build_error(icmpv4.DEST_UNREACH, code4, original)
                ip.output(own, src, 1, message)
            else:
                original = ipv6.build(src, dst, flow.proto, len(body)) + body
                message = icmpv6.build_error(icmpv6.DEST_UNREACH, code6, original)
                ip.output(own, src, 58, message, csum_offset=icmpv6.CHECKSUM_OFFSET)
            self.counters["rejects_sent"] += 1
        except (OSError, ValueError):
            self.counters["rejects_limited"] += 1


__all__ = ["Security", "NEW"]
