"""Scenario files: a network, its traffic and a timeline, described in TOML.

``load(path)`` builds the :class:`~multisock.net.network.Network` the file describes -
hosts, routers (with a routing protocol each), switches, links with impairments, addresses,
static routes and policy rules - and returns a :class:`Scenario` holding it, ready to script
further; ``Scenario.run()`` plays the traffic and the timeline and returns the
:class:`Results` (what ``python -m multisock sim`` prints and writes). The format is in
``docs/simulation.md``; a short one::

    [network]
    seed = 1
    until = "5s"

    [[host]]
    name = "a"
    routes = ["default via 10.0.1.1"]

    [[router]]
    name = "r"

    [[host]]
    name = "b"
    routes = ["default via 10.0.2.1"]

    [[link]]
    a = "a"
    b = "r"
    a_addr = "10.0.1.2/24"
    b_addr = "10.0.1.1/24"
    rate = "10mbit"
    delay = "10ms"

    [[link]]
    a = "r"
    b = "b"
    a_addr = "10.0.2.1/24"
    b_addr = "10.0.2.2/24"

    [[traffic]]
    type = "bulk"
    from = "a"
    to = "b"
    duration = "3s"

    [[event]]
    at = "2s"
    link = "a-r"
    loss = "1%"
"""

from __future__ import annotations

import functools
import tomllib
from typing import TYPE_CHECKING, Any

from multisock.net.network import Network
from multisock.net.units import parse_duration, parse_size
from multisock.sim import metrics, traffic
from multisock.sim.timeline import schedule, wait_until
from multisock.stack import addresses as A

if TYPE_CHECKING:
    from multisock.net.host import Host
    from multisock.net.link import Link
    from multisock.net.switch import Switch
    from multisock.sim.traffic import Traffic

IMPAIRMENTS = ("delay", "jitter", "loss", "reorder", "duplicate", "corrupt", "rate", "queue")
_HOST_KEYS = {"name", "addresses", "routes", "rules", "routing", "ecmp", "hash", "redirects",
              "rip", "mtu"}
_LINK_KEYS = {"a", "b", "name", "a_addr", "b_addr", "mtu", "a_to_b", "b_to_a", *IMPAIRMENTS}
_EVENT_ACTIONS = ("down", "up", "set", "stop", "start")


class ScenarioError(ValueError):
    """The file describes something that cannot be built; the message says where."""


# --------------------------------------------------------------------- parsing


def parse_route(text: str) -> dict[str, Any]:
    """``ip route`` syntax: ``PREFIX|default [via GW] [dev IF] [metric N] [table T]
    [mtu M]`` -> keyword arguments of ``IPStack.add_route`` plus the prefix."""
    words = text.split()
    if not words:
        raise ScenarioError("empty route")
    prefix = words[0]
    if prefix == "default":
        prefix = "0.0.0.0/0"
    elif prefix == "default6":
        prefix = "::/0"
    out: dict[str, Any] = {"cidr": prefix}
    rest = words[1:]
    if len(rest) % 2:
        raise ScenarioError(f"route {text!r}: every option needs a value")
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        if key == "via":
            out["via"] = value
        elif key == "dev":
            out["dev"] = value
        elif key in ("metric", "table", "mtu"):
            out[key] = int(value)
        else:
            raise ScenarioError(f"route {text!r}: unknown option {key!r} "
                                "(via, dev, metric, table, mtu)")
    return out


def parse_rule(text: str) -> dict[str, Any]:
    """``ip rule`` syntax: ``[from SRC] [to DST] [iif IF] [fwmark M[/MASK]]
    lookup|table T [priority|pref P]`` -> keyword arguments of ``IPStack.add_rule``."""
    words = text.split()
    if len(words) % 2:
        raise ScenarioError(f"rule {text!r}: every selector needs a value")
    out: dict[str, Any] = {}
    for key, value in zip(words[::2], words[1::2], strict=True):
        if key == "from":
            if value != "all":
                out["src"] = value
        elif key == "to":
            out["dst"] = value
        elif key == "iif":
            out["iif"] = value
        elif key == "fwmark":
            mark, _, mask = value.partition("/")
            out["fwmark"] = int(mark, 0)
            if mask:
                out["mask"] = int(mask, 0)
        elif key in ("lookup", "table"):
            out["table"] = 254 if value == "main" else int(value)
        elif key in ("priority", "pref"):
            out["priority"] = int(value)
        else:
            raise ScenarioError(f"rule {text!r}: unknown selector {key!r}")
    if "table" not in out:
        raise ScenarioError(f"rule {text!r}: needs lookup TABLE")
    return out


def _impairments(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: spec[k] for k in IMPAIRMENTS if k in spec}


class Event:
    """One timeline entry: at ``at`` seconds, do ``action`` to a link or a host."""

    __slots__ = ("at", "target", "kind", "action", "settings")

    def __init__(self, at: float, kind: str, target: str, action: str,
                 settings: dict[str, Any]) -> None:
        self.at = at
        self.kind = kind
        self.target = target
        self.action = action
        self.settings = settings

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.at:g}s {self.kind} {self.target} {self.action} {extra}".rstrip()


# -------------------------------------------------------------------- scenario


class Scenario:
    """A network built from a scenario file, with its traffic, timeline and routing
    daemons. ``net`` is the :class:`Network` (script it as any other); ``hosts``,
    ``links`` and ``switches`` are by the names the file gives."""

    def __init__(self, spec: dict[str, Any], *, seed: int | None = None,
                 name: str = "scenario") -> None:
        self.spec = spec
        self.name = name
        settings = spec.get("network", {})
        self.net = Network(seed=seed if seed is not None else settings.get("seed", 1),
                           mtu=int(settings.get("mtu", 1500)), name=name)
        self.until = parse_duration(settings.get("until", "10s"))
        self.sample_interval = parse_duration(settings.get("sample", "100ms"))
        self.hosts: dict[str, Host] = {}
        self.routers: set[str] = set()
        self.switches: dict[str, Switch] = {}
        self.links: dict[str, Link] = {}
        self.traffic: list[Traffic] = []
        self.traffic_starts: list[float] = []
        self.events: list[Event] = []
        self.event_log: list[dict[str, Any]] = []
        self.daemons: dict[str, Any] = {}
        self._specs: dict[str, dict[str, Any]] = {}
        self._routing_started = False
        try:
            self._build()
        except Exception:
            self.net.close()
            raise

    # ---------------------------------------------------------------- building

    def _build(self) -> None:
        spec = self.spec
        unknown = set(spec) - {"network", "host", "router", "switch", "link", "traffic",
                               "event"}
        if unknown:
            raise ScenarioError(f"unknown section(s): {', '.join(sorted(unknown))}")
        for kind in ("host", "router"):
            for entry in spec.get(kind, []):
                self._add_node(entry, router=kind == "router")
        for entry in spec.get("switch", []):
            name = entry["name"]
            self._check_name(name)
            self.switches[name] = self.net.add_switch(name)
        for entry in spec.get("link", []):
            self._add_link(entry)
        for name, entry in self._specs.items():
            self._configure(self.hosts[name], entry)
        for index, entry in enumerate(spec.get("traffic", [])):
            self._add_traffic(index, entry)
        for entry in spec.get("event", []):
            self._add_event(entry)

    def _check_name(self, name: str) -> None:
        if name in self.hosts or name in self.switches:
            raise ScenarioError(f"the name {name!r} is used twice")

    def _add_node(self, entry: dict[str, Any], router: bool) -> None:
        name = entry.get("name")
        if not name:
            raise ScenarioError("every host and router needs a name")
        self._check_name(name)
        unknown = set(entry) - _HOST_KEYS
        if unknown:
            raise ScenarioError(f"{name}: unknown key(s) {', '.join(sorted(unknown))}")
        host = self.net.add_host(name, *entry.get("addresses", []), forwarding=router,
                                 mtu=entry.get("mtu"))
        self.hosts[name] = host
        if router:
            self.routers.add(name)
        self._specs[name] = entry

    def _node(self, name: str) -> Host | Switch:
        if name in self.hosts:
            return self.hosts[name]
        if name in self.switches:
            return self.switches[name]
        raise ScenarioError(f"no host, router or switch named {name!r}")

    def _add_link(self, entry: dict[str, Any]) -> None:
        unknown = set(entry) - _LINK_KEYS
        if unknown:
            raise ScenarioError(f"link {entry.get('a')}-{entry.get('b')}: unknown key(s) "
                                f"{', '.join(sorted(unknown))}")
        a, b = self._node(entry["a"]), self._node(entry["b"])
        name = entry.get("name", f"{entry['a']}-{entry['b']}")
        if name in self.links:
            raise ScenarioError(f"two links are named {name!r}: give one a name =")
        try:
            link = self.net.link(a, b, mtu=entry.get("mtu"), a_addr=entry.get("a_addr"),
                                 b_addr=entry.get("b_addr"), **_impairments(entry))
            for key, direction in (("a_to_b", link.a_to_b), ("b_to_a", link.b_to_a)):
                if key in entry:
                    own = _impairments(entry[key])
                    if "queue" in own:
                        own["queue"] = parse_size(own["queue"])
                    with self.net.driver.lock:
                        direction.impairment.set(**own)
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"link {name}: {exc}") from None
        self.links[name] = link

    def _configure(self, host: Host, entry: dict[str, Any]) -> None:
        ip = host.ip
        try:
            if entry.get("ecmp"):
                ip.set_multipath(True, 1 if entry.get("hash", "l3") == "l4" else 0)
            if "redirects" in entry:
                ip.send_redirects = bool(entry["redirects"])
            for text in entry.get("routes", []):
                route = parse_route(text)
                cidr = route.pop("cidr")
                with self.net.driver.lock:
                    ip.add_route(cidr, **route)
            for text in entry.get("rules", []):
                with self.net.driver.lock:
                    ip.add_rule(**parse_rule(text))
        except (ValueError, OSError, KeyError) as exc:
            raise ScenarioError(f"{host.name}: {exc}") from None
        protocol = entry.get("routing", "static")
        if protocol not in ("static", "rip"):
            raise ScenarioError(f"{host.name}: routing = {protocol!r} (static or rip; "
                                "ospf is not written yet)")

    def address_of(self, name: str) -> str:
        """The first IPv4 address of a host (what ``to = "b"`` sends to)."""
        host = self.hosts[name]
        for addr in host.addresses():
            if A.family_of(A.pack(addr)) == A.AF_INET:
                return addr
        raise ScenarioError(f"{name} has no IPv4 address")

    def _add_traffic(self, index: int, entry: dict[str, Any]) -> None:
        kind = entry.get("type", "bulk")
        name = entry.get("name", f"{kind}{index}")
        for key in ("from", "to"):
            if entry.get(key) not in self.hosts:
                raise ScenarioError(f"traffic {name}: {key} = {entry.get(key)!r} is not a host")
        dst_addr = entry.get("dst") or self.address_of(entry["to"])
        try:
            gen = traffic.make(name, entry, self.hosts[entry["from"]], self.hosts[entry["to"]],
                               dst_addr)
        except (ValueError, TypeError) as exc:
            raise ScenarioError(str(exc)) from None
        self.traffic.append(gen)
        self.traffic_starts.append(parse_duration(entry.get("start", "0s")))

    def _add_event(self, entry: dict[str, Any]) -> None:
        at = parse_duration(entry["at"])
        settings = _impairments(entry)
        if "link" in entry:
            if entry["link"] not in self.links:
                raise ScenarioError(f"event at {entry['at']}: no link named {entry['link']!r}"
                                    f" (links: {', '.join(self.links)})")
            action = entry.get("action", "set" if settings else "")
            if action not in ("down", "up", "set"):
                raise ScenarioError(f"event at {entry['at']}: a link's action is down, up "
                                    "or set (with impairments)")
            self.events.append(Event(at, "link", entry["link"], action, settings))
        elif "host" in entry:
            if entry["host"] not in self.hosts:
                raise ScenarioError(f"event at {entry['at']}: no host named {entry['host']!r}")
            action = entry.get("action", "")
            if action not in ("stop", "start"):
                raise ScenarioError(f"event at {entry['at']}: a host's action is stop or start")
            self.events.append(Event(at, "host", entry["host"], action, {}))
        else:
            raise ScenarioError(f"event at {entry['at']}: needs link = or host =")

    # ----------------------------------------------------------------- routing

    def start_routing(self) -> None:
        """Start each router's routing protocol (``routing = "rip"``/``"ospf"``)."""
        if self._routing_started:
            return
        self._routing_started = True
        from multisock.routingd import start_daemon

        for name, entry in self._specs.items():
            protocol = entry.get("routing", "static")
            if protocol != "static":
                self.daemons[name] = start_daemon(self.hosts[name], protocol,
                                                  entry.get(protocol, {}))

    # ---------------------------------------------------------------- timeline

    def apply(self, event: Event) -> None:
        """Do one timeline event now (called on the driver, lock held)."""
        self.event_log.append({"t": round(self.net.driver.now() - self._origin, 6),
                               "event": event.describe()})
        if event.kind == "link":
            link = self.links[event.target]
            if event.action == "down":
                link.down()
            elif event.action == "up":
                link.up()
            else:
                link.set(**event.settings)
            return
        host = self.hosts[event.target]
        stopping = event.action == "stop"
        for link in self.links.values():
            ends = (getattr(link.end_a, "host", None), getattr(link.end_b, "host", None))
            if host in ends:
                (link.down if stopping else link.up)()
        for iface in host.interfaces:
            if not iface.loopback:
                iface.up = not stopping
        host.ip.routes.version += 1  # routes through those interfaces are gone or back
        daemon = self.daemons.get(event.target)
        if daemon is not None:
            (daemon.pause if stopping else daemon.resume)()

    _origin = 0.0

    def run(self, until: float | None = None, out: str | None = None) -> Results:
        """Start routing, traffic and the timeline; wait ``until`` seconds of the network's
        clock (the file's ``[network] until`` by default); stop; report (and write to the
        directory ``out``)."""
        until = self.until if until is None else until
        self.start_routing()
        origin = self._origin = self.net.driver.now()
        sampler = metrics.Sampler(self.net, self.links, self._probes, self.sample_interval)
        sampler.start(origin)
        for gen, start in zip(self.traffic, self.traffic_starts, strict=True):
            schedule(self.net, origin + start, gen.start)
        for event in self.events:
            schedule(self.net, origin + event.at, functools.partial(self.apply, event))
        wait_until(self.net, origin + until)
        for gen in self.traffic:
            gen.stop()
        for gen in self.traffic:
            gen.join()
        sampler.stop()
        results = Results(self, sampler, until)
        if out is not None:
            results.files = metrics.write(out, results.data, sampler)
        return results

    def _probes(self) -> list[Any]:
        return [probe for gen in self.traffic for probe in gen.probes()]

    # ---------------------------------------------------------------- lifetime

    def routes(self, host: str) -> list[str]:
        """``ip route`` of a host (the main table), for reports and tests."""
        with self.net.driver.lock:
            return sorted(r.describe() for r in self.hosts[host].ip.routes.routes()
                          if not r.interface.loopback)

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.stop()
        for gen in self.traffic:
            gen.stop()
        self.net.close()

    def __enter__(self) -> Scenario:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Scenario {self.name} hosts={list(self.hosts)} links={list(self.links)} "
                f"traffic={len(self.traffic)} events={len(self.events)}>")


class Results:
    """What a run measured: ``data`` (the JSON written to ``results.json``), the sampler's
    series (``flows``/``links``), and the files written."""

    def __init__(self, scenario: Scenario, sampler: metrics.Sampler, until: float) -> None:
        self.scenario = scenario
        self.sampler = sampler
        self.files: list[str] = []
        with scenario.net.driver.lock:
            self.data: dict[str, Any] = {
                "scenario": scenario.name, "seed": scenario.net.seed, "until": until,
                "traffic": [gen.report() for gen in scenario.traffic],
                "links": sampler.link_summary(),
                "hosts": metrics.host_summary(scenario.net),
                "events": scenario.event_log,
                "routes": {name: sorted(r.describe() for r in h.ip.routes.routes()
                                        if not r.interface.loopback)
                           for name, h in scenario.hosts.items()},
                "routing": {name: d.summary() for name, d in scenario.daemons.items()},
            }

    def traffic(self, name: str) -> dict[str, Any]:
        for report in self.data["traffic"]:
            if report["name"] == name:
                return dict(report)
        raise KeyError(name)

    @property
    def flows(self) -> list[dict[str, Any]]:
        return self.sampler.flows

    @property
    def links(self) -> list[dict[str, Any]]:
        return self.sampler.link_rows

    def text(self) -> str:
        lines = []
        for report in self.data["traffic"]:
            lines.append(f"== {report['kind']} {report['name']}")
            lines.append(report["text"])
            for error in report.get("errors", []):
                lines.append(f"   error: {error}")
        for event in self.data["events"]:
            lines.append(f"event {event['event']}")
        lines.append("== links")
        for label, counters in self.data["links"].items():
            util = counters["mean_utilisation"]
            lines.append(f"{label}: delivered {counters['delivered']} lost {counters['lost']} "
                         f"queue-dropped {counters['queue_dropped']} down-dropped "
                         f"{counters['down_dropped']} max-queue {counters['max_queue']}"
                         + (f" utilisation {util:.0%}" if util is not None else ""))
        return "\n".join(lines)


def loads(text: str, *, seed: int | None = None, name: str = "scenario") -> Scenario:
    """A scenario from TOML text."""
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{name}: {exc}") from None
    return Scenario(spec, seed=seed, name=name)


def load(path: str, *, seed: int | None = None, start_routing: bool = True) -> Scenario:
    """Build the scenario in the TOML file ``path``; its network is ``.net``. Routing
    daemons start at once (``start_routing=False`` to start them yourself), so routes
    converge while you script; traffic and the timeline wait for :meth:`Scenario.run`."""
    import os

    with open(path, "rb") as f:
        text = f.read().decode()
    scenario = loads(text, seed=seed, name=os.path.splitext(os.path.basename(path))[0])
    if start_routing:
        scenario.start_routing()
    return scenario
