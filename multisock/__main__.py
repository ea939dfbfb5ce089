"""``python -m multisock``: ``demo`` (the main job), ``run`` (the launcher), ``sim`` and
``plot`` (the simulation tools)."""

from __future__ import annotations

import sys

USAGE = """usage: python -m multisock <command> [...]

commands:
  demo [--seed N] [--loss P] [--delay TIME] [--pcap FILE]
                       a web server and a client on two virtual hosts over a lossy link
  run [options] script.py [args...] | run [options] -m module [args...]
                       run a program with its sockets on multisock's stack
                       (--delay 10ms --loss 1% --rate 10mbit...: times and rates need a unit)
  sim scenario.toml [--seed N] [--out DIR] [--until 60s] [--pcap FILE] [--plot]
                       build and run a scenario file: topology, traffic, timeline, metrics
  plot trace.pcap [--out DIR]
                       draw the time-sequence graph of each TCP connection in a pcap

python -m multisock <command> --help describes a command and its options.
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "demo":
        from multisock.demo import main as demo_main

        return demo_main(rest)
    if command == "run":
        from multisock.cli import run_main

        return run_main(rest)
    if command == "sim":
        from multisock.sim.cli import sim_main

        return sim_main(rest)
    if command == "plot":
        from multisock.sim.cli import plot_main

        return plot_main(rest)
    print(f"multisock: unknown command {command!r}\n\n{USAGE}", file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
