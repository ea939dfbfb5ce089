"""Metrics of a run: per flow, per link direction and per host, sampled on the network's
clock and written as JSON and CSV.

The sampler is one driver timer every ``interval`` (it runs with the driver's lock held, so
what it reads is consistent): for each TCP flow the sender's TCP_INFO (bytes acked, RTT,
cwnd, retransmissions), for each link direction its impairment counters and the
transmitter's backlog. Goodput over time is the difference of bytes acked between two
samples; a link's utilisation the bytes sent over its rate. Host counters are read once,
at the end. Reading costs a few dict lookups per flow and link each interval; nothing is
added to the packet path.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multisock.net.driver import TimerHandle
    from multisock.net.link import Link
    from multisock.net.network import Network
    from multisock.sim.traffic import FlowProbe


def jain_index(values: Iterable[float]) -> float:
    """Jain's fairness index: 1 when every share is equal, 1/n when one takes everything."""
    xs = list(values)
    if not xs or not any(xs):
        return 0.0
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def mathis_bps(mss: int, rtt: float, loss: float, c: float = 1.22) -> float:
    """The Mathis et al. (1997) bound on a Reno flow's throughput: MSS/RTT * C/sqrt(p)."""
    if loss <= 0 or rtt <= 0:
        return float("inf")
    return mss * 8 / rtt * c / loss ** 0.5


class Sampler:
    """Samples flows and links every ``interval`` seconds of the network's clock."""

    def __init__(self, net: Network, links: dict[str, Link],
                 probes: Callable[[], list[FlowProbe]], interval: float = 0.1) -> None:
        self.net = net
        self.links = links
        self.probes = probes
        self.interval = interval
        self.origin = 0.0
        self.flows: list[dict[str, Any]] = []  # rows: t, flow, bytes_acked, goodput_bps...
        self.link_rows: list[dict[str, Any]] = []
        self._last_acked: dict[str, tuple[float, int]] = {}
        self._last_sent: dict[str, int] = {}
        self._timer: TimerHandle | None = None
        self._running = False

    def start(self, origin: float) -> None:
        self.origin = origin
        self._running = True
        self._timer = self.net.driver.call_at(origin, self._tick)

    def stop(self) -> None:
        self._running = False
        with self.net.driver.lock:
            if self._timer is not None:
                self._timer.cancel()
            self.sample()  # one last look, so the series end where the run ended

    def _tick(self) -> None:
        if not self._running:
            return
        self.sample()
        self._timer = self.net.driver.call_at(self.net.driver.now() + self.interval, self._tick)

    def sample(self) -> None:
        now = self.net.driver.now()
        t = round(now - self.origin, 6)
        for probe in self.probes():
            last = self._last_acked.get(probe.label)
            if last is not None and now - last[0] < self.interval / 2:
                continue  # (the last look, just after a tick: too short to mean a rate)
            info = probe.tcb.info()
            acked = int(info.get("bytes_acked", 0))
            goodput = 0.0
            if last is not None and now > last[0]:
                goodput = (acked - last[1]) * 8 / (now - last[0])
            self._last_acked[probe.label] = (now, acked)
            self.flows.append({
                "t": t, "flow": probe.label, "bytes_acked": acked, "goodput_bps": goodput,
                "srtt_ms": round(float(info.get("rtt") or 0.0) * 1000, 3),
                "cwnd": info.get("snd_cwnd", 0), "ssthresh": info.get("snd_ssthresh", 0),
                "retransmits": info.get("total_retrans", 0), "state": info.get("state"),
                "snd_nxt": int(info.get("bytes_sent", 0)),
            })
        for name, link in self.links.items():
            for direction in link.directions:
                imp = direction.impairment
                counters = imp.counters
                label = f"{name}:{direction.label}"
                sent = counters["sent_bytes"]
                delta = sent - self._last_sent.get(label, sent)
                self._last_sent[label] = sent
                util = (delta * 8 / (imp.rate * self.interval)) if imp.rate else None
                self.link_rows.append({
                    "t": t, "link": name, "direction": direction.label,
                    "queue": imp.backlog(now), "sent_bytes": sent,
                    "utilisation": None if util is None else round(min(util, 1.0), 4),
                    "delivered": counters["delivered"], "lost": counters["lost"],
                    "queue_dropped": counters["queue_dropped"],
                    "down_dropped": counters["down_dropped"],
                })

    # ---------------------------------------------------------------- summary

    def link_summary(self) -> dict[str, Any]:
        """Per link direction: the counters (drops by cause) and the largest queue seen."""
        out: dict[str, Any] = {}
        for name, link in self.links.items():
            for direction in link.directions:
                rows = [r for r in self.link_rows if r["direction"] == direction.label
                        and r["link"] == name]
                utils = [r["utilisation"] for r in rows if r["utilisation"] is not None]
                out[f"{name}:{direction.label}"] = {
                    **direction.impairment.counters,
                    "max_queue": max((r["queue"] for r in rows), default=0),
                    "mean_utilisation": (sum(utils) / len(utils)) if utils else None,
                }
        return out

    def flow_series(self, label: str) -> list[dict[str, Any]]:
        return [row for row in self.flows if row["flow"] == label]


def host_summary(net: Network) -> dict[str, Any]:
    return {name: host.stats() for name, host in net.hosts.items()}


def write(out_dir: str, results: dict[str, Any], sampler: Sampler | None) -> list[str]:
    """``results.json`` plus ``flows.csv`` and ``links.csv`` (the sampled series)."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    path = os.path.join(out_dir, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=str)
    written.append(path)
    if sampler is not None:
        for name, rows in (("flows.csv", sampler.flows), ("links.csv", sampler.link_rows)):
            path = os.path.join(out_dir, name)
            with open(path, "w", newline="") as f:
                if rows:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
            written.append(path)
    return written
