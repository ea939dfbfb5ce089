"""``python -m multisock run [options] script.py [args]`` / ``run [options] -m module [args]``.

Builds one virtual host whose loopback (and so every client and server in the
program) carries the impairments given, patches before the target is imported,
then runs it as ``__main__`` with the ``sys.argv`` it expects. The exit code
passes through. The same options exist as environment variables for the shims
(``MULTISOCK_DELAY``...); see ``docs/activation.md``.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import textwrap
from typing import Any

from multisock.launch import ActivationError, activate, options_from_env, print_stats
from multisock.net.units import RATE_UNITS, TIME_UNITS
from multisock.options import (
    OPTIONS,
    Option,
    OptionError,
    check_combination,
)

__all__ = ["ActivationError", "activate", "build_parser", "options_from_env",
           "print_stats", "run_main"]

EPILOG = "\n".join(textwrap.wrap(
    f"UNITS: a time needs one ({TIME_UNITS}); a rate needs one ({RATE_UNITS}). A bare "
    "number such as --delay 20 is refused. Probabilities are 1% or 0.01. Every option has a "
    "MULTISOCK_<OPTION> environment variable for MULTISOCK=1 (docs/activation.md).", 79))


def _argparse_type(option: Option) -> Any:
    def convert(text: str) -> Any:
        try:
            return option.check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option.name
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multisock run",
        usage="python -m multisock run [options] script.py [args...] | -m module [args...]",
        description="Run a Python program with its sockets on multisock's userspace stack.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in OPTIONS:
        if not option.flag:
            continue
        help_text = option.help.replace("%", "%%")
        flag = "--" + option.name.replace("_", "-")
        if option.switch:
            parser.add_argument(flag, dest=option.name, action="store_true", help=help_text)
        else:
            parser.add_argument(flag, dest=option.name, metavar=option.metavar,
                                type=_argparse_type(option), help=help_text,
                                action="append" if option.listed else "store")
    parser.add_argument("-m", dest="module", help="run a library module as a script")
    parser.add_argument("target", nargs=argparse.REMAINDER, help="script.py [args...]")
    return parser


def _simulate(host: Any, until: float | None, program: Any) -> int:
    """``--virtual-time``: the program inside a simulation (``multisock.sim``)."""
    from multisock.net.virtual_driver import SimulationError, SimulationTimeout
    from multisock.sim.runner import run_program

    try:
        run_program(host, until, program)
    except SimulationTimeout:
        print(f"multisock run: stopped at virtual time {until:g} s (--until)", file=sys.stderr)
        return 124
    except SimulationError as exc:
        print(f"multisock run: {exc}", file=sys.stderr)
        return 1
    return 0


def run_main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_combination(vars(args), env=False)
    except OptionError as exc:
        parser.error(str(exc))
    if args.module is None and not args.target:
        parser.error("give a script or -m module")
    if args.module is None and not os.path.exists(args.target[0]):
        print(f"multisock run: can't open file {args.target[0]!r}: no such file", file=sys.stderr)
        return 2
    from multisock import runtime

    if runtime.env_activated:
        parser.error("MULTISOCK=1 in the environment already activated multisock in this "
                     "process; unset MULTISOCK to use run's options")
    options = {k: v for k, v in vars(args).items() if k not in ("module", "target")}
    if args.virtual_time:
        options["backend"] = "virtual"  # (net.backends: only a simulation asks for it)
    try:
        host = activate(options)
    except ActivationError as exc:
        print(f"multisock run: {exc}", file=sys.stderr)
        return 1

    def program() -> None:
        if args.module is not None:
            sys.argv = [args.module, *args.target]
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        else:
            script = args.target[0]
            sys.argv = list(args.target)
            sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
            runpy.run_path(script, run_name="__main__")

    try:
        if args.virtual_time:
            return _simulate(host, args.until, program)
        program()
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0
