"""``python -m multisock sim scenario.toml [--seed N] [--out DIR] [--until 60s]`` and
``python -m multisock plot trace.pcap [--out DIR]``."""

from __future__ import annotations

import argparse
import sys

from multisock.net.units import TIME_UNITS, parse_duration


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def sim_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="multisock sim",
        description="Build the network a scenario file describes, run its traffic and "
                    "timeline, print what each generator measured and write the metrics "
                    "(results.json, flows.csv, links.csv) to --out.")
    parser.add_argument("scenario", help="a scenario file (TOML; docs/simulation.md)")
    parser.add_argument("--seed", type=int, help="the network's seed (default: the file's)")
    parser.add_argument("--out", metavar="DIR", help="write results.json, flows.csv, "
                        "links.csv (and plots with --plot) there")
    parser.add_argument("--until", type=_duration, metavar="TIME",
                        help=f"how long to run ({TIME_UNITS}; default: the file's until)")
    parser.add_argument("--pcap", metavar="FILE", help="capture every link into FILE")
    parser.add_argument("--plot", action="store_true",
                        help="draw throughput, cwnd and queue plots into --out "
                             "(needs matplotlib: pip install 'multisock[plot]')")
    args = parser.parse_args(argv)
    if args.plot and not args.out:
        parser.error("--plot needs --out DIR")
    from multisock.sim.scenario import ScenarioError, load

    try:
        scenario = load(args.scenario, seed=args.seed)
    except (OSError, ScenarioError) as exc:
        print(f"multisock sim: {exc}", file=sys.stderr)
        return 2
    with scenario:
        if args.pcap:
            scenario.net.capture(args.pcap)
        print(f"{scenario.name}: {len(scenario.hosts)} hosts, {len(scenario.links)} links, "
              f"{len(scenario.traffic)} traffic, {len(scenario.events)} events, "
              f"seed {scenario.net.seed}")
        results = scenario.run(until=args.until, out=args.out)
        print(results.text())
        if args.plot:
            from multisock.sim import plot

            results.files += plot.scenario_plots(results, args.out)
    for path in results.files:
        print(f"wrote {path}")
    failed = [r["name"] for r in results.data["traffic"] if r.get("errors")]
    return 1 if failed else 0


def plot_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="multisock plot",
        description="Draw the tcptrace-style time-sequence graph of every TCP connection "
                    "in a pcap (ours or the kernel's), one PNG per connection and direction "
                    "that carried data. Needs matplotlib: pip install 'multisock[plot]'.")
    parser.add_argument("pcap")
    parser.add_argument("--out", metavar="DIR", default=".",
                        help="where to write the PNGs (default: here)")
    args = parser.parse_args(argv)
    from multisock.sim import plot

    try:
        files = plot.pcap_time_sequence(args.pcap, args.out)
    except plot.PlotUnavailable as exc:
        print(f"multisock plot: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"multisock plot: {exc}", file=sys.stderr)
        return 2
    for path in files:
        print(f"wrote {path}")
    if not files:
        print("no TCP connection carrying data in that capture")
    return 0
