"""The stateful firewall: chains ``input``, ``output``, ``forward`` of first-match rules.

Rules are compiled, not interpreted: each chain becomes one Python function, generated
from the checked :class:`~multisock.security.rules.RuleSpec` list whenever the rules
change, in which every rule is one ``if`` testing only the fields it names, cheapest
first (protocol, ports, interface, flags, ICMP type, conntrack state, addresses, and the
rate limit last since it spends a token). The generated code holds no user text: every
value it compares with is a name bound to a checked constant. So a packet costs one call,
a few attribute reads and one comparison per rule until its rule is found - no loop over
rule objects, no dictionary of matches.

Verdicts follow netfilter: ``accept`` and ``drop`` end the chain; ``reject`` drops and
answers (an ICMP destination unreachable, or a TCP RST ``with tcp reset``); ``log`` records
an event and goes on to the next rule. A chain that runs out of rules applies its policy
(``accept`` unless set). Each rule counts the packets and bytes it matched.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from multisock.security.flow import Flow
from multisock.security.ratelimit import SourceLimit
from multisock.security.rules import (
    CHAINS,
    POLICIES,
    Net,
    Ports,
    RuleSpec,
    make_rule,
    parse_line,
)

ACCEPT, DROP = 1, 0
_RUN = 4  # consecutive single-port rules grouped behind one set test from this many on
ChainFunc = Callable[[Flow, int, float], int]


class Rule:
    """A rule in a chain, with its counters and its rate-limit state."""

    __slots__ = ("spec", "packets", "octets", "limiter")

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec
        self.packets = 0
        self.octets = 0
        self.limiter = SourceLimit(spec.limit[0], spec.burst) if spec.limit else None


class Firewall:
    """``host.firewall``. Nothing is hooked into the stack until a chain has a rule or a
    drop policy (``active``); ``changed`` tells the owner to (un)hook."""

    def __init__(self, changed: Callable[[], None], reject: Callable[[Flow, str, str], None],
                 log: Callable[[Flow, str, str], None],
                 lock: AbstractContextManager[Any] | None = None) -> None:
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self._changed = changed
        self._reject = reject
        self._log = log
        self.chains: dict[str, list[Rule]] = {c: [] for c in CHAINS}
        self.policies: dict[str, str] = dict.fromkeys(CHAINS, "accept")
        self.policy_counts: dict[str, list[int]] = {c: [0, 0] for c in CHAINS}
        # the compiled chains; None where a chain accepts everything (no hook needed)
        self.compiled: dict[str, ChainFunc | None] = dict.fromkeys(CHAINS)
        self.needs_conntrack = False

    # ---------------------------------------------------------------- the API

    def add_rule(self, chain: str, action: str, **match: Any) -> None:
        """Append a rule, e.g. ``add_rule("input", "drop", proto="tcp", dport=5432)``.

        Matches: proto, src, dst (CIDRs, "!" negates), sport, dport (80, "1000-2000",
        "22,80", range(...)), iface (arriving interface), flags ("syn,!ack"), icmp_type,
        state ("new,established,related,invalid"), limit ("100/s", "over 5/s") with burst;
        ``reject_with`` ("port-unreachable", "admin-prohibited", "tcp-reset"...) for reject,
        ``prefix`` for log."""
        spec = make_rule(chain, action, match)
        with self._lock:
            self.chains[spec.chain].append(Rule(spec))
            self._recompile()

    def add(self, line: str) -> None:
        """A rule (or ``CHAIN policy ACTION``) in the one-line text form (``rules.py``)."""
        chain, action, policy, match = parse_line(line)
        if policy is not None:
            self.set_policy(chain, policy)
        else:
            self.add_rule(chain, action, **match)

    def set_policy(self, chain: str, action: str) -> None:
        chain, action = str(chain).lower(), str(action).lower()
        if chain not in CHAINS:
            raise ValueError(f"no chain {chain!r}; one of {', '.join(CHAINS)}")
        if action not in POLICIES:
            raise ValueError(f"a policy is accept or drop, not {action!r}")
        with self._lock:
            self.policies[chain] = action
            self._recompile()

    def rules(self) -> list[dict[str, Any]]:
        """Every rule in chain order, with its counters (and each chain's policy row)."""
        out: list[dict[str, Any]] = []
        for chain in CHAINS:
            for n, rule in enumerate(self.chains[chain]):
                spec = rule.spec
                out.append({"chain": chain, "index": n, "action": spec.action,
                            "match": dict(spec.given), "packets": rule.packets,
                            "bytes": rule.octets, "rule": spec.describe(),
                            **({"reject_with": spec.reject_with}
                               if spec.action == "reject" else {})})
            packets, octets = self.policy_counts[chain]
            out.append({"chain": chain, "index": None, "action": self.policies[chain],
                        "match": {}, "packets": packets, "bytes": octets,
                        "rule": f"{chain} policy {self.policies[chain]}"})
        return out

    def clear(self) -> None:
        """No rules, every policy accept: the stack's hooks go away again."""
        with self._lock:
            for chain in CHAINS:
                self.chains[chain] = []
                self.policies[chain] = "accept"
                self.policy_counts[chain] = [0, 0]
            self._recompile()

    def active(self, chain: str) -> bool:
        return self.compiled[chain] is not None

    # -------------------------------------------------------------- compiling

    def _recompile(self) -> None:
        self.needs_conntrack = any(rule.spec.state is not None
                                   for rules in self.chains.values() for rule in rules)
        for chain in CHAINS:
            rules = self.chains[chain]
            if not rules and self.policies[chain] == "accept":
                self.compiled[chain] = None
            else:
                self.compiled[chain] = self._compile(chain, rules)
        self._changed()

    def _compile(self, chain: str, rules: list[Rule]) -> ChainFunc:
        """One function for the chain: ``chain(flow, ctinfo, now) -> ACCEPT | DROP``.

        Consecutive rules that each name one protocol and one destination port (the usual
        "these services" list) sit behind one set test, so a packet for none of those ports
        skips the whole run at the cost of one lookup - first-match order is unchanged,
        since no rule of the run could match it anyway."""
        env: dict[str, Any] = {"_rules": rules, "_reject": self._reject, "_log": self._log,
                               "_policy": self.policy_counts[chain], "_int": int.from_bytes}
        lines = ["def chain(f, ct, now):",
                 "    proto = f.proto; sport = f.sport; dport = f.dport; frag = f.fragment"]
        uses = {"src": False, "dst": False}
        body: list[str] = []
        n = 0
        while n < len(rules):
            key = self._run_key(rules[n].spec)
            end = n
            while end < len(rules) and key is not None and self._run_key(rules[end].spec) == key:
                end += 1
            if key is not None and end - n >= _RUN:
                env[f"_run{n}"] = frozenset(next(iter(r.spec.dport.values))  # type: ignore
                                            for r in rules[n:end])
                body.append(f"    if proto == {key} and not frag and dport in _run{n}:")
                for m in range(n, end):
                    body += self._rule_lines(m, rules[m], chain, env, uses, "    ")
                n = end
                continue
            body += self._rule_lines(n, rules[n], chain, env, uses, "")
            n += 1
        lines += body
        lines.append("    _policy[0] += 1")
        lines.append("    _policy[1] += f.size")
        lines.append(f"    return {ACCEPT if self.policies[chain] == 'accept' else DROP}")
        code = compile("\n".join(lines), f"<firewall {chain}>", "exec")
        exec(code, env)
        func: ChainFunc = env["chain"]
        return func

    @staticmethod
    def _run_key(spec: RuleSpec) -> int | None:
        """The protocol of a rule that names one protocol and exactly one dport, else None."""
        ports = spec.dport
        if (spec.proto is None or len(spec.proto) != 1 or ports is None
                or ports.values is None or len(ports.values) != 1):
            return None
        return next(iter(spec.proto))

    def _rule_lines(self, n: int, rule: Rule, chain: str, env: dict[str, Any],
                    uses: dict[str, bool], indent: str) -> list[str]:
        spec = rule.spec
        conds = self._conditions(n, spec, env, uses)
        env[f"_r{n}"] = rule
        lines = [f"    if {' and '.join(conds) if conds else 'True'}:",
                 f"        _r{n}.packets += 1",
                 f"        _r{n}.octets += f.size"]
        if spec.action == "accept":
            lines.append(f"        return {ACCEPT}")
        elif spec.action == "drop":
            lines.append(f"        return {DROP}")
        elif spec.action == "reject":
            env[f"_w{n}"] = spec.reject_with
            lines.append(f"        _reject(f, _w{n}, {chain!r})")
            lines.append(f"        return {DROP}")
        else:
            env[f"_p{n}"] = spec.prefix
            lines.append(f"        _log(f, _p{n}, {chain!r})")
        return [indent + line for line in lines]

    @staticmethod
    def _conditions(n: int, spec: RuleSpec, env: dict[str, Any],
                    uses: dict[str, bool]) -> list[str]:
        conds = []
        if spec.proto is not None:
            if len(spec.proto) == 1:
                conds.append(f"proto == {next(iter(spec.proto))}")
            else:
                env[f"_proto{n}"] = spec.proto
                conds.append(f"proto in _proto{n}")
        for key in ("dport", "sport"):
            ports: Ports | None = getattr(spec, key)
            if ports is None:
                continue
            conds.append("not frag")
            if ports.values is not None and len(ports.values) == 1:
                conds.append(f"{key} == {next(iter(ports.values))}")
            elif len(ports.ranges) == 1:
                lo, hi = ports.ranges[0]
                conds.append(f"{lo} <= {key} <= {hi}")
            elif ports.values is not None:
                env[f"_{key}{n}"] = ports.values
                conds.append(f"{key} in _{key}{n}")
            else:
                env[f"_{key}{n}"] = tuple(ports.ranges)
                conds.append(f"any(lo <= {key} <= hi for lo, hi in _{key}{n})")
        if spec.iface is not None:
            env[f"_if{n}"] = spec.iface
            conds.append(f"f.iface == _if{n}")
        if spec.flags is not None:
            mask, want = spec.flags
            conds.append(f"f.flags & {mask} == {want}")
        if spec.icmp_type is not None:
            conds.append(f"f.itype == {spec.icmp_type}")
        if spec.state is not None:
            conds.append(f"ct & {spec.state}")
        for key in ("src", "dst"):
            nets: list[Net] | None = getattr(spec, key)
            if nets is None:
                continue
            # read where needed: a rule behind a port test that failed costs nothing here
            uses[key] = True
            tests = [f"(len(f.{key}) == {size} and _int(f.{key}, 'big') & {mask} == {net})"
                     for size, net, mask, _neg in nets]
            joined = " or ".join(tests)
            conds.append(f"not ({joined})" if nets[0][3] else f"({joined})")
        if spec.limit is not None:
            over = spec.limit[1]
            conds.append(f"{'not ' if over else ''}_r{n}.limiter.conform(f.src, now)")
        return conds
