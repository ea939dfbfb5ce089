"""Firewall rules as users write them: keyword matches (Python) or one nftables-flavoured line.

``add_rule(chain, action, **match)`` and the text form both end in a :class:`RuleSpec`: the
values checked and normalised (protocol numbers, networks as integers, port sets, a flag
mask), so that the firewall can compile it without looking at user text again.

Text grammar (one rule per line; words in any order after the chain, nftables' words)::

    rule     := CHAIN VERDICT MATCH*   |   CHAIN MATCH* VERDICT   |   CHAIN policy (accept|drop)
    CHAIN    := input | output | forward
    VERDICT  := accept | drop | reject [with tcp reset | with icmp[v6] CODE] | log [prefix TEXT]
    CODE     := port-unreachable | admin-prohibited | host-unreachable | net-unreachable
                | host-prohibited | net-prohibited
    MATCH    := tcp | udp | icmp | icmpv6 | ip            protocol (ip: any; "tcp,udp" both)
              | saddr [!]CIDR[,CIDR...] | daddr [!]CIDR[,...]
              | sport PORTS | dport PORTS                 80 | 1000-2000 | 22,80,8000-8080
              | iif NAME                                  the arriving interface
              | flags FLAGS                               syn,!ack: SYN set and ACK clear
              | type ICMPTYPE                             echo-request, destination-unreachable, 8
              | ct state STATES                           new,established,related,invalid
              | limit rate [over] N/UNIT [burst N]        per source; UNIT s, minute, hour, day

Examples: ``input drop tcp dport 5432``, ``input accept ct state established,related``,
``input reject with tcp reset tcp dport 1-1023 saddr 10.0.0.0/8``,
``input accept tcp dport 80 limit rate 100/s burst 20``, ``forward policy drop``.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Any

from multisock.security.conntrack import STATE_NAMES
from multisock.security.flow import ACK, FIN, PSH, RST, SYN
from multisock.security.ratelimit import parse_rate

CHAINS = ("input", "output", "forward")
ACTIONS = ("accept", "drop", "reject", "log")
POLICIES = ("accept", "drop")
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132,
             "gre": 47, "esp": 50, "ah": 51}
FLAG_NAMES = {"fin": FIN, "syn": SYN, "rst": RST, "psh": PSH, "ack": ACK, "urg": 0x20,
              "ece": 0x40, "cwr": 0x80}
ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4,
              "redirect": 5, "echo-request": 8, "time-exceeded": 11, "parameter-problem": 12,
              "timestamp-request": 13, "timestamp-reply": 14}
ICMPV6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3,
                "parameter-problem": 4, "echo-request": 128, "echo-reply": 129,
                "nd-router-solicit": 133, "nd-router-advert": 134, "nd-neighbor-solicit": 135,
                "nd-neighbor-advert": 136}
# reject kinds -> (ICMPv4 code, ICMPv6 code); "tcp-reset" is its own
REJECT_KINDS = {"port-unreachable": (3, 4), "admin-prohibited": (13, 1),
                "host-unreachable": (1, 3), "net-unreachable": (0, 0),
                "host-prohibited": (10, 1), "net-prohibited": (9, 1), "tcp-reset": (-1, -1)}
MATCH_KEYS = ("proto", "src", "dst", "sport", "dport", "iface", "flags", "icmp_type",
              "state", "limit", "burst")
_MAX_PORT_SET = 4096  # larger port lists are kept as ranges


Net = tuple[int, int, int, bool]  # (address length in bytes, network, mask, negated)


class RuleSpec:
    """One checked rule. Match fields are None when the rule does not ask."""

    __slots__ = ("chain", "action", "proto", "src", "dst", "sport", "dport", "iface",
                 "flags", "icmp_type", "state", "limit", "burst", "reject_with", "prefix",
                 "given")

    def __init__(self, chain: str, action: str) -> None:
        self.chain = chain
        self.action = action
        self.proto: frozenset[int] | None = None
        self.src: list[Net] | None = None
        self.dst: list[Net] | None = None
        self.sport: Ports | None = None
        self.dport: Ports | None = None
        self.iface: str | None = None
        self.flags: tuple[int, int] | None = None  # (mask, value)
        self.icmp_type: int | None = None
        self.state: int | None = None  # mask of conntrack ctinfo bits
        self.limit: tuple[float, bool] | None = None  # (rate per second, over)
        self.burst = 5  # nftables' default burst
        self.reject_with = "port-unreachable"  # Linux REJECT's default
        self.prefix = ""
        self.given: dict[str, Any] = {}  # what the user wrote, for rules()

    def describe(self) -> str:
        parts = [self.chain, self.action]
        if self.action == "reject":
            parts += ["with", self.reject_with]
        if self.action == "log" and self.prefix:
            parts += ["prefix", repr(self.prefix)]
        parts += [f"{k}={v}" for k, v in self.given.items()]
        return " ".join(parts)


class Ports:
    """A port match: a frozenset when small, else sorted inclusive ranges."""

    __slots__ = ("values", "ranges")

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        total = sum(hi - lo + 1 for lo, hi in ranges)
        self.ranges = sorted(ranges)
        self.values: frozenset[int] | None = None
        if total <= _MAX_PORT_SET:
            self.values = frozenset(p for lo, hi in ranges for p in range(lo, hi + 1))


# ---------------------------------------------------------------- normalising

def _protocols(value: Any) -> frozenset[int] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else \
        list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    out = set()
    for item in items:
        if isinstance(item, int):
            if not 0 <= item <= 255:
                raise ValueError(f"protocol number out of range: {item}")
            out.add(item)
            continue
        name = str(item).strip().lower()
        if name in ("ip", "ip6", "any", "all"):
            return None
        if name.isdigit():
            out.add(int(name))
        elif name in PROTOCOLS:
            out.add(PROTOCOLS[name])
        else:
            raise ValueError(f"unknown protocol {item!r} (tcp, udp, icmp, icmpv6, ip, a number)")
    return frozenset(out)


def _networks(value: Any) -> list[Net]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        text = str(item).strip()
        negated = text.startswith("!")
        if negated:
            text = text[1:].strip()
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"not an address or network: {item!r}") from None
        size = 4 if net.version == 4 else 16
        out.append((size, int(net.network_address), int(net.netmask), negated))
    if len({n[3] for n in out}) > 1:
        raise ValueError(f"mix of negated and plain networks in one match: {value!r}")
    return out


def _ports(value: Any) -> Ports:
    if isinstance(value, range):
        if value.step != 1 or not value:
            raise ValueError(f"a port range must be contiguous: {value!r}")
        items: list[Any] = [(value.start, value.stop - 1)]
    elif isinstance(value, int):
        items = [(value, value)]
    elif isinstance(value, str):
        items = []
        for part in value.strip("{} ").split(","):
            part = part.strip()
            if "-" in part:
                lo, _, hi = part.partition("-")
                items.append((_port(lo), _port(hi)))
            else:
                items.append((_port(part), _port(part)))
    else:
        items = [(_port(p), _port(p)) if not isinstance(p, tuple) else (_port(p[0]), _port(p[1]))
                 for p in value]
    for lo, hi in items:
        if lo > hi:
            raise ValueError(f"port range upside down: {lo}-{hi}")
    if not items:
        raise ValueError("an empty port list")
    return Ports(items)


def _port(text: Any) -> int:
    try:
        port = int(str(text).strip(), 10)
    except ValueError:
        raise ValueError(f"not a port: {text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range 0..65535: {text!r}")
    return port


def _flags(value: Any) -> tuple[int, int]:
    mask = want = 0
    for part in str(value).lower().replace("|", ",").split(","):
        part = part.strip()
        clear = part.startswith("!")
        name = part.lstrip("!").strip()
        if name not in FLAG_NAMES:
            raise ValueError(f"unknown TCP flag {name!r} ({', '.join(FLAG_NAMES)})")
        mask |= FLAG_NAMES[name]
        if not clear:
            want |= FLAG_NAMES[name]
    return mask, want


def _state(value: Any) -> int:
    items = value.split(",") if isinstance(value, str) else list(value)
    mask = 0
    for item in items:
        name = str(item).strip().lower()
        if name not in STATE_NAMES:
            raise ValueError(f"unknown conntrack state {item!r} ({', '.join(STATE_NAMES)})")
        mask |= STATE_NAMES[name]
    return mask


def make_rule(chain: str, action: str, match: dict[str, Any]) -> RuleSpec:
    """Check ``add_rule``'s arguments; raises ValueError (or TypeError for unknown keywords)."""
    chain = str(chain).lower()
    action = str(action).lower()
    if chain not in CHAINS:
        raise ValueError(f"no chain {chain!r}; one of {', '.join(CHAINS)}")
    if action not in ACTIONS:
        raise ValueError(f"no action {action!r}; one of {', '.join(ACTIONS)}")
    spec = RuleSpec(chain, action)
    extra = {"reject_with", "prefix", "with_"}
    unknown = set(match) - set(MATCH_KEYS) - extra
    if unknown:
        raise TypeError(f"unknown match keyword(s) {sorted(unknown)}; known: "
                        f"{', '.join(MATCH_KEYS)}, reject_with, prefix")
    spec.given = {k: v for k, v in match.items() if v is not None and k not in extra}
    spec.proto = _protocols(match.get("proto"))
    if match.get("src") is not None:
        spec.src = _networks(match["src"])
    if match.get("dst") is not None:
        spec.dst = _networks(match["dst"])
    for key in ("sport", "dport"):
        if match.get(key) is not None:
            if spec.proto is None or not spec.proto <= {6, 17, 132}:
                raise ValueError(f"{key} needs proto tcp or udp (nftables asks the same)")
            setattr(spec, key, _ports(match[key]))
    if match.get("iface") is not None:
        if chain == "output":
            raise ValueError("iface matches the arriving interface: input and forward only")
        spec.iface = str(match["iface"])
    if match.get("flags") is not None:
        if spec.proto != frozenset((6,)):
            raise ValueError("flags needs proto tcp")
        spec.flags = _flags(match["flags"])
    if match.get("icmp_type") is not None:
        value = match["icmp_type"]
        if spec.proto is None:
            spec.proto = frozenset((1,))
        v6 = spec.proto == frozenset((58,))
        if not v6 and spec.proto != frozenset((1,)):
            raise ValueError("icmp_type needs proto icmp or icmpv6")
        if isinstance(value, int):
            spec.icmp_type = value
        else:
            names = ICMPV6_TYPES if v6 else ICMP_TYPES
            text = str(value).strip().lower()
            if text.isdigit():
                spec.icmp_type = int(text)
            elif text in names:
                spec.icmp_type = names[text]
            else:
                raise ValueError(f"unknown ICMP type {value!r} ({', '.join(names)})")
        if not 0 <= spec.icmp_type <= 255:
            raise ValueError(f"ICMP type out of range: {value!r}")
    if match.get("state") is not None:
        spec.state = _state(match["state"])
    if match.get("limit") is not None:
        spec.limit = parse_rate(str(match["limit"]))
        if match.get("burst") is not None:
            burst = int(match["burst"])
            if burst < 1:
                raise ValueError("burst must be at least 1")
            spec.burst = burst
    elif match.get("burst") is not None:
        raise ValueError("burst goes with limit")
    kind = match.get("reject_with") or match.get("with_")
    if kind is not None:
        if action != "reject":
            raise ValueError("reject_with goes with the reject action")
        kind = str(kind).lower().replace("_", "-").replace("tcp reset", "tcp-reset")
        if kind not in REJECT_KINDS:
            raise ValueError(f"unknown reject kind {kind!r} ({', '.join(REJECT_KINDS)})")
        if kind == "tcp-reset" and spec.proto != frozenset((6,)):
            raise ValueError("reject with tcp reset needs proto tcp")
        spec.reject_with = kind
    if match.get("prefix") is not None:
        if action != "log":
            raise ValueError("prefix goes with the log action")
        spec.prefix = str(match["prefix"])
    return spec


# ----------------------------------------------------------------- text form

def parse_line(line: str) -> tuple[str, str, str | None, dict[str, Any]]:
    """One text rule -> (chain, action, policy or None, match keywords). Raises ValueError."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise ValueError(f"{line!r}: {exc}") from None
    if not words:
        raise ValueError("an empty rule")
    chain = words[0].lower()
    if chain not in CHAINS:
        raise ValueError(f"{line!r}: a rule starts with its chain ({', '.join(CHAINS)})")
    rest = [w.lower() if not w.startswith("/") else w for w in words[1:]]
    if rest and rest[0] == "policy":
        if len(rest) != 2 or rest[1] not in POLICIES:
            raise ValueError(f"{line!r}: 'policy accept' or 'policy drop'")
        return chain, rest[1], rest[1], {}
    action: str | None = None
    match: dict[str, Any] = {}
    protos: list[str] = []
    i = 0

    def take(what: str) -> str:
        nonlocal i
        if i + 1 >= len(rest):
            raise ValueError(f"{line!r}: {what} after {rest[i]!r}")
        i += 1
        return words[1 + i]  # original case (prefixes, interface names)

    while i < len(rest):
        word = rest[i]
        if word in ACTIONS:
            if action is not None:
                raise ValueError(f"{line!r}: two verdicts ({action}, {word})")
            action = word
            if word == "reject" and i + 1 < len(rest) and rest[i + 1] == "with":
                i += 1
                kind = take("tcp reset or icmp CODE").lower()
                if kind in ("icmp", "icmpv6", "icmpx"):
                    kind = take("an ICMP code").lower()
                elif kind == "tcp":
                    if take("reset").lower() != "reset":
                        raise ValueError(f"{line!r}: 'with tcp reset'")
                    kind = "tcp-reset"
                match["reject_with"] = kind
            elif word == "log" and i + 1 < len(rest) and rest[i + 1] == "prefix":
                i += 1
                match["prefix"] = take("the prefix text")
        elif word in PROTOCOLS or word in ("ip", "ip6") or "," in word and all(
                p in PROTOCOLS for p in word.split(",")):
            protos.append(word)
        elif word in ("saddr", "daddr"):
            match["src" if word == "saddr" else "dst"] = take("an address").lower()
        elif word in ("sport", "dport"):
            match[word] = take("ports").lower()
        elif word in ("iif", "iifname"):
            match["iface"] = take("an interface name")
        elif word == "flags":
            match["flags"] = take("TCP flags").lower()
        elif word in ("type", "icmp-type"):
            match["icmp_type"] = take("an ICMP type").lower()
        elif word == "ct":
            if take("state").lower() != "state":
                raise ValueError(f"{line!r}: 'ct state STATES'")
            match["state"] = take("conntrack states").lower()
        elif word == "state":
            match["state"] = take("conntrack states").lower()
        elif word == "limit":
            if i + 1 < len(rest) and rest[i + 1] == "rate":
                i += 1
            rate = take("a rate").lower()
            if rate == "over":
                rate = "over " + take("a rate").lower()
            match["limit"] = rate
            if i + 1 < len(rest) and rest[i + 1] == "burst":
                i += 1
                text = take("a burst size").lower()
                match["burst"] = _port(text.split()[0]) if text.isdigit() else text
                if not str(match["burst"]).isdigit():
                    raise ValueError(f"{line!r}: burst needs a number")
                match["burst"] = int(match["burst"])
                if i + 1 < len(rest) and rest[i + 1] in ("packets", "packet"):
                    i += 1
        else:
            raise ValueError(f"{line!r}: unknown word {words[1 + i]!r}")
        i += 1
    if action is None:
        raise ValueError(f"{line!r}: no verdict (accept, drop, reject, log)")
    if protos:
        match["proto"] = ",".join(protos)
    return chain, action, None, match


def check_line(line: str) -> str:
    """The ``--firewall`` option's check: the line parses and its rule is valid."""
    chain, action, policy, match = parse_line(line)
    if policy is None:
        make_rule(chain, action, match)
    return line
