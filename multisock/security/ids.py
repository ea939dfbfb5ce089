"""IDS/IPS rules in a subset of Snort/Suricata syntax, matched on reassembled TCP streams.

Grammar (one rule per line; ``#`` comments and blank lines skipped)::

    ACTION PROTO SRC SPORT DIR DST DPORT (OPTION; OPTION; ...)
    ACTION := alert | drop                 (drop makes it an IPS: the packet and its flow)
    PROTO  := tcp | udp | icmp | ip
    SRC/DST:= any | 10.0.0.0/8 | 10.0.0.1 | [10.0.0.0/8,192.168.0.0/16] | !ADDR
    SPORT/DPORT := any | 80 | 1024: | :1023 | 8000:8080 | [80,443,8000:8080] | !PORT
    DIR    := -> | <>
    OPTION := msg:"text" | content:"bytes|0d 0a|more" | nocase | pcre:"/regex/flags"
            | flow:to_server|to_client|from_client|from_server|established|not_established
            | sid:N | rev:N | classtype:x | priority:N | reference:x | metadata:x (kept, unused)

``content`` holds text with ``|hex|`` bytes; ``nocase`` applies to the content before it;
every content and the pcre (flags ``i s m x``) must match. Options outside this list are
refused with their name, never silently ignored (a rule that would not do what it says).

**Streams.** A TCP rule's content is looked for in the stream of its direction, not in
single segments: each tracked connection keeps, per direction, the next expected sequence
number and the last ``overlap`` bytes seen (the longest content minus one, at least
``pcre_overlap`` when a rule has a pcre), so a match split across segments is found; the
window inspected is that tail plus the segment's new bytes, and a match must end in the new
bytes (so the same bytes never alert twice). Retransmitted bytes are skipped; a hole (a
segment ahead of the expected sequence number) restarts the tail and is counted.
Memory per flow is bounded by the overlap. UDP and ICMP rules look at each datagram.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from typing import Any

from multisock.security.conntrack import ESTABLISHED, ESTABLISHED_TCP, Conn
from multisock.security.flow import ICMP, ICMPV6, SYN, TCP, UDP, Flow

ALERT, DROP_RULE = "alert", "drop"
_PROTOCOLS = {"tcp": (TCP,), "udp": (UDP,), "icmp": (ICMP, ICMPV6), "ip": None}
_IGNORED = {"rev", "classtype", "priority", "reference", "metadata", "gid"}
_FLOW_WORDS = {"to_server", "from_client", "to_client", "from_server", "established",
               "not_established", "stateless"}
PCRE_OVERLAP = 255
_MASK32 = 0xFFFFFFFF

_RULE = re.compile(r"^\s*(\w+)\s+(\w+)\s+(\S+|\[[^\]]*\])\s+(\S+|\[[^\]]*\])\s*(->|<>)\s*"
                   r"(\S+|\[[^\]]*\])\s+(\S+|\[[^\]]*\])\s*\((.*)\)\s*$", re.S)


class IdsRule:
    __slots__ = ("action", "protos", "src", "sport", "dst", "dport", "both_ways", "msg",
                 "contents", "pcre", "to_server", "to_client", "established",
                 "not_established", "sid", "text", "hits")

    def __init__(self, text: str) -> None:
        self.text = text
        self.action = ALERT
        self.protos: tuple[int, ...] | None = None
        self.src: Any = None
        self.sport: Any = None
        self.dst: Any = None
        self.dport: Any = None
        self.both_ways = False
        self.msg = ""
        self.contents: list[tuple[bytes, bool]] = []  # (pattern, nocase: lowercased)
        self.pcre: re.Pattern[bytes] | None = None
        self.to_server = self.to_client = False
        self.established = self.not_established = False
        self.sid = 0
        self.hits = 0

    def longest(self) -> int:
        longest = max((len(c) for c, _ in self.contents), default=1)
        return max(longest, PCRE_OVERLAP + 1) if self.pcre is not None else longest

    def __repr__(self) -> str:
        return f"<IdsRule sid={self.sid} {self.action} {self.msg!r}>"


# ------------------------------------------------------------------- parsing

def load(source: str) -> list[IdsRule]:
    """Rules from a file path (if one exists by that name) or from the text itself."""
    text = source
    if "\n" not in source and "(" not in source and os.path.exists(source):
        with open(source, encoding="utf-8") as f:
            text = f.read()
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rules.append(parse_rule(line))
        except ValueError as exc:
            raise ValueError(f"IDS rule line {number}: {exc}") from None
    return rules


def parse_rule(line: str) -> IdsRule:
    match = _RULE.match(line)
    if match is None:
        raise ValueError(f"not 'ACTION PROTO SRC SPORT -> DST DPORT (OPTIONS)': {line!r}")
    action, proto, src, sport, direction, dst, dport, options = match.groups()
    rule = IdsRule(line)
    if action not in (ALERT, DROP_RULE):
        raise ValueError(f"action {action!r}: alert or drop")
    rule.action = action
    if proto not in _PROTOCOLS:
        raise ValueError(f"protocol {proto!r}: tcp, udp, icmp or ip")
    rule.protos = _PROTOCOLS[proto]
    rule.src, rule.dst = _addresses(src), _addresses(dst)
    rule.sport, rule.dport = _ports(sport), _ports(dport)
    rule.both_ways = direction == "<>"
    if (rule.sport is not None or rule.dport is not None) and proto not in ("tcp", "udp"):
        raise ValueError("ports need tcp or udp")
    for name, value in _options(options):
        if name == "msg":
            rule.msg = _quoted(value)
        elif name == "content":
            rule.contents.append((_content(value), False))
        elif name == "nocase":
            if not rule.contents:
                raise ValueError("nocase before any content")
            pattern, _ = rule.contents[-1]
            rule.contents[-1] = (pattern.lower(), True)
        elif name == "pcre":
            rule.pcre = _pcre(value)
        elif name == "flow":
            for word in value.replace(" ", "").split(","):
                if word not in _FLOW_WORDS:
                    raise ValueError(f"flow:{word} is not supported ({', '.join(_FLOW_WORDS)})")
                if word in ("to_server", "from_client"):
                    rule.to_server = True
                elif word in ("to_client", "from_server"):
                    rule.to_client = True
                elif word == "established":
                    rule.established = True
                elif word == "not_established":
                    rule.not_established = True
        elif name == "sid":
            if not value.strip().isdigit():
                raise ValueError(f"sid needs a number: {value!r}")
            rule.sid = int(value)
        elif name not in _IGNORED:
            raise ValueError(f"option {name!r} is not supported")
    if not rule.sid:
        raise ValueError("every rule needs sid:N")
    return rule


def _options(text: str) -> list[tuple[str, str]]:
    """Split ``name:value; name; ...`` honouring quotes and backslash escapes."""
    out = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == ";" and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise ValueError("an unterminated quote")
    if "".join(current).strip():
        out.append("".join(current))
    options = []
    for item in out:
        item = item.strip()
        if not item:
            continue
        name, _, value = item.partition(":")
        options.append((name.strip().lower(), value.strip()))
    return options


def _quoted(value: str) -> str:
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise ValueError(f"a quoted string is needed: {value!r}")
    return re.sub(r"\\(.)", r"\1", value[1:-1])


def _content(value: str) -> bytes:
    text = _quoted(value)
    out = bytearray()
    parts = text.split("|")
    if len(parts) % 2 == 0:
        raise ValueError(f"unbalanced '|' in content: {value!r}")
    for n, part in enumerate(parts):
        if n % 2:
            try:
                out += bytes.fromhex(part)
            except ValueError:
                raise ValueError(f"bad hex in content: |{part}|") from None
        else:
            out += part.encode("utf-8")
    if not out:
        raise ValueError("an empty content")
    return bytes(out)


def _pcre(value: str) -> re.Pattern[bytes]:
    text = value
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise ValueError(f"an unterminated quote: {value!r}")
        # only the rule syntax's own escapes go; the regex keeps its backslashes
        text = re.sub(r'\\([";])', r"\1", value[1:-1])
    if not text.startswith("/") or text.rfind("/") == 0:
        raise ValueError(f"pcre is \"/regex/flags\": {value!r}")
    end = text.rfind("/")
    pattern, flags_text = text[1:end], text[end + 1:]
    flags = 0
    for flag in flags_text:
        if flag == "i":
            flags |= re.I
        elif flag == "s":
            flags |= re.S
        elif flag == "m":
            flags |= re.M
        elif flag == "x":
            flags |= re.X
        else:
            raise ValueError(f"pcre flag {flag!r} is not supported (i, s, m, x)")
    try:
        return re.compile(pattern.encode("utf-8"), flags)
    except re.error as exc:
        raise ValueError(f"pcre: {exc}") from None


def _addresses(text: str) -> Any:
    """None for any; else (negated, [(size, net, mask)])."""
    if text == "any":
        return None
    negated = text.startswith("!")
    text = text.lstrip("!")
    items = text.strip("[]").split(",")
    nets = []
    for item in items:
        try:
            net = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"not an address, network or 'any': {item!r}") from None
        nets.append((4 if net.version == 4 else 16, int(net.network_address),
                     int(net.netmask)))
    return negated, nets


def _ports(text: str) -> Any:
    """None for any; else (negated, [(lo, hi)])."""
    if text == "any":
        return None
    negated = text.startswith("!")
    text = text.lstrip("!")
    ranges = []
    for item in text.strip("[]").split(","):
        item = item.strip()
        try:
            if ":" in item:
                low, _, high = item.partition(":")
                ranges.append((int(low) if low else 0, int(high) if high else 65535))
            else:
                ranges.append((int(item), int(item)))
        except ValueError:
            raise ValueError(f"not a port, range or 'any': {item!r}") from None
    for lo, hi in ranges:
        if not 0 <= lo <= hi <= 65535:
            raise ValueError(f"port range out of 0..65535: {lo}:{hi}")
    return negated, ranges


def _in_addresses(spec: Any, address: bytes) -> bool:
    if spec is None:
        return True
    negated, nets = spec
    value = int.from_bytes(address, "big")
    found = any(size == len(address) and value & mask == net for size, net, mask in nets)
    return found != negated


def _in_ports(spec: Any, port: int) -> bool:
    if spec is None:
        return True
    negated, ranges = spec
    return any(lo <= port <= hi for lo, hi in ranges) != negated


# ------------------------------------------------------------------ matching

class _Stream:
    """One direction of a TCP connection as the IDS follows it."""

    __slots__ = ("next_seq", "tail")

    def __init__(self) -> None:
        self.next_seq = -1
        self.tail = b""


class Ids:
    def __init__(self, rules: list[IdsRule], emit: Callable[[str, bytes, dict[str, Any]], None]
                 ) -> None:
        self.rules = rules
        self.emit = emit
        self.overlap = max((r.longest() for r in rules), default=1) - 1
        self.nocase = any(nc for r in rules for _, nc in r.contents) or any(
            r.pcre is not None and r.pcre.flags & re.I for r in rules)
        by_proto: dict[int, list[IdsRule]] = {}
        for proto in (TCP, UDP, ICMP, ICMPV6):
            by_proto[proto] = [r for r in rules if r.protos is None or proto in r.protos]
        self.by_proto = by_proto
        self.others = [r for r in rules if r.protos is None]
        self.counters = {"inspected": 0, "alerts": 0, "drops": 0, "stream_gaps": 0,
                         "retransmitted_bytes": 0}

    def inspect(self, flow: Flow, conn: Conn | None, direction: int, ctinfo: int,
                now: float) -> int:
        """1 (accept) or 0 (drop): the packet through every rule of its protocol."""
        rules = self.by_proto.get(flow.proto, self.others)
        if not rules or flow.fragment:
            return 1
        data = flow.payload[flow.data_offset:]
        tail = b""
        if flow.proto == TCP and conn is not None and len(data):
            got = self._stream(flow, conn, direction, data)
            if got is None:
                return 1  # nothing new in this segment (a retransmission)
            tail, data = got
        self.counters["inspected"] += 1
        window = tail + bytes(data) if tail else bytes(data)
        lowered = window.lower() if self.nocase else window
        fresh = len(tail)
        established = ctinfo == ESTABLISHED and (conn is None or conn.proto != TCP
                                                 or conn.tcp >= ESTABLISHED_TCP)
        verdict = 1
        for rule in rules:
            if not self._header(rule, flow):
                continue
            if rule.to_server and direction != 0 or rule.to_client and direction != 1:
                continue
            if rule.established and not established or rule.not_established and established:
                continue
            if not self._payload(rule, window, lowered, fresh):
                continue
            rule.hits += 1
            from multisock.stack import addresses as A

            details = {"sid": rule.sid, "msg": rule.msg, "proto": flow.proto,
                       "dst": A.unpack(flow.dst), "sport": flow.sport, "dport": flow.dport,
                       "action": rule.action}
            if rule.action == DROP_RULE:
                self.counters["drops"] += 1
                self.emit("ids_drop", flow.src, details)
                if conn is not None:
                    conn.blocked = True
                verdict = 0
                break
            self.counters["alerts"] += 1
            self.emit("ids_alert", flow.src, details)
        return verdict

    @staticmethod
    def _header(rule: IdsRule, flow: Flow) -> bool:
        if (_in_addresses(rule.src, flow.src) and _in_addresses(rule.dst, flow.dst)
                and _in_ports(rule.sport, flow.sport) and _in_ports(rule.dport, flow.dport)):
            return True
        return rule.both_ways and (
            _in_addresses(rule.src, flow.dst) and _in_addresses(rule.dst, flow.src)
            and _in_ports(rule.sport, flow.dport) and _in_ports(rule.dport, flow.sport))

    @staticmethod
    def _payload(rule: IdsRule, window: bytes, lowered: bytes, fresh: int) -> bool:
        if rule.contents:
            ends_fresh = False
            for pattern, nocase in rule.contents:
                haystack = lowered if nocase else window
                at = haystack.find(pattern, max(0, fresh - len(pattern) + 1))
                if at >= 0:
                    ends_fresh = True
                elif pattern not in haystack:
                    return False
            if not ends_fresh:
                return False
        if rule.pcre is not None:
            for found in rule.pcre.finditer(window):
                if found.end() > fresh or (found.end() == fresh == 0):
                    return True
            return False
        return True

    def _stream(self, flow: Flow, conn: Conn, direction: int,
                data: memoryview) -> tuple[bytes, memoryview] | None:
        """(tail, new bytes) of this segment in its direction's stream; None if it brings
        nothing new (a retransmission)."""
        streams = conn.stream
        if streams is None:
            streams = conn.stream = (_Stream(), _Stream())
        stream: _Stream = streams[direction]
        seq = flow.seq
        if flow.flags & SYN:
            seq = (seq + 1) & _MASK32
        size = len(data)
        if stream.next_seq < 0:
            stream.next_seq = seq  # the first bytes seen in this direction
        ahead = (seq - stream.next_seq) & _MASK32
        if ahead == 0:
            pass
        elif ahead < 0x80000000:  # a hole before this segment: the tail cannot bridge it
            self.counters["stream_gaps"] += 1
            stream.tail = b""
        else:  # it starts before the expected byte: skip what was seen
            seen = (stream.next_seq - seq) & _MASK32
            if seen >= size:
                if size:
                    self.counters["retransmitted_bytes"] += size
                return None
            self.counters["retransmitted_bytes"] += seen
            data = data[seen:]
            size -= seen
            seq = stream.next_seq
        if not size:
            return None
        tail = stream.tail
        stream.next_seq = (seq + size) & _MASK32
        keep = self.overlap
        if keep:
            if size >= keep:
                stream.tail = bytes(data[size - keep:])
            else:
                stream.tail = (tail + bytes(data))[-keep:]
        return tail, data
