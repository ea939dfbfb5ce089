"""``python -m compat_tests [targets...] [--stock-only | --multisock-only] [--timeout S] [--json F]``

Runs each target (a module of CPython's ``test`` package, or ``module.Class``) on the stock
socket module and under multisock; gevent's own test modules (``gevent.tests.test__pywsgi``,
``--suite gevent``) on gevent's monkey-patching alone and with multisock activated under it.
Prints per target run/passed/failed/errored/skipped side by side, the tests that pass stock but not under multisock, and checks the manifest.
Exit status: 0 when every stock-passing test passes under multisock or is listed in the
manifest, no listed test passes, and every manifest id names a real test; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from compat_tests.manifest import EXPECTED_FAILURES, NOT_IN_BRIDGED_MODE
from compat_tests.runner import PASSING, ModeResult, list_ids, new_logdir, run_mode

DEFAULT_TARGETS = [
    "test_socket",
    "test_httplib",
    "test_socketserver",
    "test_urllib2_localnet",
    "test_httpservers",
    "test_selectors",
    "test_timeout",
    "test_urllib2",
    "test_asyncio.test_sock_lowlevel",
    "test_asyncio.test_sendfile",
    "test_asyncio.test_server",
    "test_asyncio.test_streams",
    "test_ssl",  # TLS over userspace sockets (multisock.tls), CPython's own TLS tests
]

# gevent's own tests (in the installed gevent package), run on gevent's monkey-patching and with
# multisock activated under it (MULTISOCK_GEVENT=1): what programs written for gevent rely on
GEVENT_TARGETS = [
    "gevent.tests.test__pywsgi",
    "gevent.tests.test__server_pywsgi",
    "gevent.tests.test__server",
    "gevent.tests.test__makefile_ref",
    "gevent.tests.test__socket_dns",
    "gevent.tests.test__socket_dns6",
    "gevent.tests.test__select",
    "gevent.tests.test__selectors",
    "gevent.tests.test__monkey_selectors",
    "gevent.tests.test__socket",
    "gevent.tests.test__socket_ex",
    "gevent.tests.test__socket_close",
    "gevent.tests.test__socket_timeout",
    "gevent.tests.test__socket_errors",
    "gevent.tests.test__socket_send_memoryview",
    "gevent.tests.test__socketpair",
    "gevent.tests.test__ssl",
    "gevent.tests.test__backdoor",
    "gevent.tests.test__greenio",
]

SUITES = {"cpython": DEFAULT_TARGETS, "gevent": GEVENT_TARGETS,
          "all": DEFAULT_TARGETS + GEVENT_TARGETS}


def in_scope(test_id: str, target: str) -> bool:
    return test_id == target or test_id.startswith(target + ".")


def manifest_for(target: str, fd_mode: str | None = None) -> dict[str, str]:
    return {k: v for k, v in EXPECTED_FAILURES.items() if in_scope(k, target)
            and not (fd_mode == "bridged" and k in NOT_IN_BRIDGED_MODE)}


def first_line(detail: str) -> str:
    lines = [ln for ln in str(detail).strip().splitlines() if ln.strip()]
    return lines[-1].strip()[:160] if lines else ""


def compare(target: str, stock: ModeResult | None, ms: ModeResult | None,
            fd_mode: str | None = None) -> dict[str, Any]:
    """Regressions, unexpected passes and manifest errors for one target."""
    listed = manifest_for(target, fd_mode)
    ids = (ms or stock).ids if (ms or stock) is not None else []  # type: ignore[union-attr]
    known = set(ids) | (set(stock.ids) if stock else set())
    report: dict[str, Any] = {"manifest": len(listed), "regressions": [],
                              "unexpected_passes": [], "unknown_ids": [], "stock_fails_too": [],
                              "multisock_fails": [], "better_than_stock": []}
    report["unknown_ids"] = sorted(k for k in listed if k not in known)
    if ms is None:
        return report
    for test_id in ids:
        m = ms.outcome(test_id)
        s = stock.outcome(test_id) if stock is not None else None
        if test_id in listed:
            if m in PASSING:
                report["unexpected_passes"].append(test_id)
            elif s is not None and s not in PASSING:
                report["stock_fails_too"].append(test_id)
            continue
        if m in PASSING:
            if s is not None and s not in PASSING and s != "skip":
                report["better_than_stock"].append(test_id)
            continue
        if s is None:
            if m != "skip":
                report["multisock_fails"].append(test_id)
        elif s in PASSING:
            report["regressions"].append(test_id)
    return report


def fmt_counts(c: dict[str, int] | None) -> str:
    if c is None:
        return f"{'-':>5} {'-':>5} {'-':>5} {'-':>5} {'-':>5}"
    return f"{c['run']:>5} {c['passed']:>5} {c['failed']:>5} {c['errored']:>5} {c['skipped']:>5}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat_tests", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*",
                        help="modules of CPython's test package (test_socket, "
                             "test_socket.BasicTCPTest) or gevent's, named in full "
                             "(gevent.tests.test__pywsgi); default: the --suite")
    parser.add_argument("--suite", choices=sorted(SUITES), default="all",
                        help="the targets when none are named: CPython's, gevent's, or both "
                             "(default)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--stock-only", action="store_true")
    only.add_argument("--multisock-only", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-test limit (s)")
    parser.add_argument("--json", metavar="FILE", help="write the full results here")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="targets run in parallel (a target's stock and multisock runs "
                             "are sequential)")
    parser.add_argument("--no-rerun", action="store_true",
                        help="do not rerun regressions once in a fresh worker")
    parser.add_argument("--fd-mode", choices=("readiness", "bridged"),
                        help="the multisock side's fd mode (`multisock run --fd-mode`); "
                             "default: multisock's own (readiness)")
    parser.add_argument("--logs", metavar="DIR", help="keep worker logs and events in DIR")
    parser.add_argument("--check-manifest", action="store_true",
                        help="only check that every manifest id names a collected test")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the failure detail of each regression")
    args = parser.parse_args(argv)
    targets = args.targets or SUITES[args.suite]
    logdir = new_logdir(args.logs)

    if args.check_manifest:
        return check_manifest(logdir)

    modes = ["stock", "multisock"]
    if args.stock_only:
        modes = ["stock"]
    elif args.multisock_only:
        modes = ["multisock"]
    t0 = time.monotonic()
    results: dict[tuple[str, str], ModeResult] = {}

    def work(target: str) -> None:
        # a target's two runs never overlap: some tests bind fixed ports (VSOCK, ...)
        for mode in modes:
            r = results[(target, mode)] = run_mode(target, mode, args.timeout, logdir,
                                                    fd_mode=args.fd_mode)
            print(f"  {target} [{mode}]: {r.counts()} in {r.seconds}s", file=sys.stderr,
                  flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(work, targets))

    reports: dict[str, dict[str, Any]] = {}
    for target in targets:
        stock, ms = results.get((target, "stock")), results.get((target, "multisock"))
        report = compare(target, stock, ms, args.fd_mode)
        report["flaky"] = []
        if ms is not None and report["regressions"] and not args.no_rerun:
            again = run_mode(target, "multisock", args.timeout, logdir,
                             only=report["regressions"], tag=".rerun",
                             fd_mode=args.fd_mode)
            for test_id in list(report["regressions"]):
                if again.outcome(test_id) in PASSING:
                    report["regressions"].remove(test_id)
                    report["flaky"].append(test_id)
        reports[target] = report

    ok = print_report(targets, results, reports)
    print(f"\n{'OK' if ok else 'FAILED'} in {time.monotonic() - t0:.0f}s (logs: {logdir})")
    if args.verbose:
        for target in targets:
            ms = results.get((target, "multisock"))
            for test_id in reports[target]["regressions"]:
                if ms is not None:
                    print(f"\n=== {test_id} [{ms.outcome(test_id)}]\n"
                          f"{ms.outcomes.get(test_id, {}).get('detail', '')}")
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(targets, results, reports, ok), indent=1))
    return 0 if ok else 1


def print_report(targets: list[str], results: dict[tuple[str, str], ModeResult],
                 reports: dict[str, dict[str, Any]]) -> bool:
    width = max(len(t) for t in targets)
    head = f"{'run':>5} {'pass':>5} {'fail':>5} {'err':>5} {'skip':>5}"
    print(f"\n{'':<{width}}   {'stock':^29}   {'multisock':^29}")
    print(f"{'target':<{width}}   {head}   {head}   manifest  regressions")
    ok = True
    for target in targets:
        stock, ms = results.get((target, "stock")), results.get((target, "multisock"))
        rep = reports[target]
        print(f"{target:<{width}}   {fmt_counts(stock.counts() if stock else None)}   "
              f"{fmt_counts(ms.counts() if ms else None)}   {rep['manifest']:>8}  "
              f"{len(rep['regressions']):>11}")
    for target in targets:
        rep = reports[target]
        for mode in ("stock", "multisock"):
            r = results.get((target, mode))
            if r is not None and r.load_error:
                ok = False
                print(f"\n{target} [{mode}] could not be loaded:\n{r.load_error}")
            if r is not None and r.notes:
                print(f"\n{target} [{mode}] worker events: " + "; ".join(r.notes))
            if r is not None:
                for fx in r.fixtures:
                    if fx["outcome"] == "error":
                        print(f"{target} [{mode}] fixture error: {fx['id']}: "
                              f"{first_line(fx['detail'])}")
        ms = results.get((target, "multisock"))
        for key, title, fatal in (
            ("regressions", "pass on stock, fail under multisock (not in the manifest)", True),
            ("unexpected_passes", "listed in the manifest but passing (unexpectedly passing)",
             True),
            ("unknown_ids", "manifest ids that match no test", True),
            ("flaky", "failed under multisock, passed on a rerun (flaky)", False),
            ("stock_fails_too", "listed, but not passing on stock either in this run", False),
            ("multisock_fails", "failing under multisock (stock not run)", False),
            ("better_than_stock", "pass under multisock, fail on stock", False),
        ):
            items = rep[key]
            if not items:
                continue
            ok = ok and not fatal
            print(f"\n{target}: {title}: {len(items)}")
            for test_id in items:
                detail = ""
                if ms is not None and key in ("regressions", "multisock_fails", "flaky"):
                    detail = f"  [{ms.outcome(test_id)}] " + first_line(
                        ms.outcomes.get(test_id, {}).get("detail", ""))
                print(f"  {test_id}{detail}")
    return ok


def to_json(targets: list[str], results: dict[tuple[str, str], ModeResult],
            reports: dict[str, dict[str, Any]], ok: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": ok, "targets": {}}
    for target in targets:
        entry: dict[str, Any] = dict(reports[target])
        tests: dict[str, dict[str, str]] = {}
        for mode in ("stock", "multisock"):
            r = results.get((target, mode))
            if r is None:
                continue
            entry[mode] = {"counts": r.counts(), "seconds": r.seconds, "notes": r.notes,
                           "load_error": r.load_error}
            for test_id, rec in r.outcomes.items():
                tests.setdefault(test_id, {})[mode] = rec["outcome"]
                if rec["outcome"] not in PASSING and rec["outcome"] != "skip":
                    tests[test_id][mode + "_detail"] = str(rec.get("detail", ""))[:2000]
        entry["tests"] = tests
        out["targets"][target] = entry
    return out


def module_of(test_id: str) -> str:
    """The module a manifest id lives in: ``test_socket``, ``test_asyncio.test_streams``,
    ``gevent.tests.test__pywsgi``."""
    parts = test_id.split(".")
    if test_id.startswith("gevent.tests."):
        return ".".join(parts[:3])
    return ".".join(parts[:2]) if parts[0] == "test_asyncio" else parts[0]


def check_manifest(logdir: Path) -> int:
    """Every manifest id must name a test collected from its module."""
    modules = sorted({module_of(k) for k in EXPECTED_FAILURES})
    bad: list[str] = []
    for module in modules:
        ids = set(list_ids(module, logdir))
        bad += [k for k in EXPECTED_FAILURES if in_scope(k, module) and k not in ids]
    bad += [f"{k} (in NOT_IN_BRIDGED_MODE, not in EXPECTED_FAILURES)"
            for k in sorted(NOT_IN_BRIDGED_MODE - set(EXPECTED_FAILURES))]
    for k, reason in EXPECTED_FAILURES.items():
        if not reason.strip():
            bad.append(f"{k} (no reason)")
    for item in bad:
        print(f"manifest: {item}: matches no test")
    print(f"manifest: {len(EXPECTED_FAILURES)} entries, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
