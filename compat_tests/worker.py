"""One worker process: run one CPython test target, stock or under multisock, test by test.

``python -m compat_tests.worker --target test_socket --mode multisock --events FILE``

The worker activates multisock (mode ``multisock``) *before* anything from the ``test``
package is imported, so the test module and ``test.support`` see the patched ``socket``,
``select`` and ``selectors`` from their first import, as an application started under
``python -m multisock run`` would. It then loads the target with ``unittest``'s loader,
flattens the suite into its tests (same order every time) and runs them from ``--start``,
in-process and in that order, so class and module fixtures behave as under ``unittest``.

Every test start and end is appended to the events file as one JSON line, flushed at once,
so the parent (:mod:`compat_tests.runner`) knows exactly where a worker stopped. A hung
test cannot hang the run: ``faulthandler.dump_traceback_later(exit=True)`` is re-armed
at every test boundary; when it fires it writes every thread's stack to the log and ends
the process, even if a thread holds the GIL. The parent then records that test as timed
out and starts a new worker at the next index.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from compat_tests import local_rules

DETAIL_LIMIT = 4000


class Events:
    """The JSON-lines channel to the parent (a file it tails)."""

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    def emit(self, **record: Any) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()


GEVENT_PREFIX = "gevent.tests."


def is_gevent_target(target: str) -> bool:
    """gevent's own test modules are named in full (``gevent.tests.test__pywsgi``)."""
    return target.startswith(GEVENT_PREFIX)


def activate_multisock(gevent: bool = False, fd_mode: str | None = None) -> None:
    """What ``python -m multisock run`` (``--gevent`` for gevent's tests, ``--fd-mode``)
    does first."""
    from multisock.launch import activate

    options: dict[str, Any] = {"gevent": True} if gevent else {}
    if fd_mode:
        options["fd_mode"] = fd_mode
    activate(options)


def patch_gevent_stock() -> None:
    """The stock side of gevent's tests: gevent's own monkey-patching, nothing else.

    Both sides start from ``gevent.monkey.patch_all()`` (most of gevent's modules call it at
    import anyway), so the only difference is multisock under it, as ``MULTISOCK_GEVENT=1``
    adds. (Unpatched, a module that does not patch itself would see an unpatched ``os``: e.g.
    test__selectors' "closing fd before selecting" passes only while ``os.close`` is not
    gevent's deferred close.)
    """
    from gevent import monkey

    monkey.patch_all()


def setup_gevent_resources() -> None:
    """gevent's tests read their resources from ``gevent.testing``, not from ``test.support``:
    deny ``network``/``urlfetch`` (they would resolve and connect to hosts on the internet)."""
    from gevent.testing import resources

    resources.setup_resources([r for r in resources.get_ALL_RESOURCES()
                               if r not in ("network", "urlfetch")])


def flatten(suite: Any) -> Iterator[Any]:
    import unittest

    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from flatten(item)
        else:
            yield item


def short_id(full: str) -> str:
    if full.startswith(GEVENT_PREFIX):
        return full
    return full[len("test."):] if full.startswith("test.") else full


def load(target: str) -> list[Any]:
    import unittest

    loader = unittest.TestLoader()
    suite = loader.loadTestsFromName(target if is_gevent_target(target) else "test." + target)
    tests = list(flatten(suite))
    if loader.errors:
        # import errors come back as synthetic failing tests; keep them so they are counted
        pass
    return tests


def make_result(events: Events, timeout: float, ids: dict[int, int]) -> Any:
    import unittest

    class EventResult(unittest.TestResult):
        """Records one outcome per test: error > fail > skip > pass (subtests included)."""

        def __init__(self) -> None:
            super().__init__()
            self._outcome = "pass"
            self._detail = ""
            self._started = 0.0

        def _arm(self) -> None:
            faulthandler.dump_traceback_later(timeout, exit=True)

        def startTest(self, test: Any) -> None:  # noqa: N802 - unittest's name
            super().startTest(test)
            self._outcome, self._detail = "pass", ""
            self._started = time.monotonic()
            events.emit(event="start", index=ids.get(id(test), -1), id=short_id(test.id()))
            self._arm()

        def stopTest(self, test: Any) -> None:  # noqa: N802
            super().stopTest(test)
            events.emit(event="end", index=ids.get(id(test), -1), id=short_id(test.id()),
                        outcome=self._outcome, detail=self._detail[:DETAIL_LIMIT],
                        seconds=round(time.monotonic() - self._started, 3))
            self._arm()

        def _set(self, outcome: str, detail: str) -> None:
            rank = {"pass": 0, "xfail": 0, "skip": 1, "fail": 2, "xpass": 2, "error": 3}
            if rank[outcome] >= rank[self._outcome]:
                self._outcome = outcome
                if detail:
                    self._detail = detail

        def _is_fixture(self, test: Any) -> bool:
            return not isinstance(test, unittest.TestCase) or type(test).__name__ == "_ErrorHolder"

        def _fixture(self, test: Any, outcome: str, detail: str) -> None:
            events.emit(event="fixture", id=str(test.id() if hasattr(test, "id") else test),
                        outcome=outcome, detail=detail[:DETAIL_LIMIT])

        def addError(self, test: Any, err: Any) -> None:  # noqa: N802
            super().addError(test, err)
            text = self._exc_info_to_string(err, test)
            if self._is_fixture(test):
                self._fixture(test, "error", text)
            else:
                self._set("error", text)

        def addFailure(self, test: Any, err: Any) -> None:  # noqa: N802
            super().addFailure(test, err)
            self._set("fail", self._exc_info_to_string(err, test))

        def addSkip(self, test: Any, reason: str) -> None:  # noqa: N802
            super().addSkip(test, reason)
            if self._is_fixture(test):
                self._fixture(test, "skip", reason)
            else:
                self._set("skip", reason)

        def addExpectedFailure(self, test: Any, err: Any) -> None:  # noqa: N802
            super().addExpectedFailure(test, err)
            self._set("xfail", "")

        def addUnexpectedSuccess(self, test: Any) -> None:  # noqa: N802
            super().addUnexpectedSuccess(test)
            self._set("xpass", "unexpected success")

        def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:  # noqa: N802
            super().addSubTest(test, subtest, err)
            if err is not None:
                kind = "fail" if issubclass(err[0], test.failureException) else "error"
                self._set(kind, f"{subtest.id()}\n" + self._exc_info_to_string(err, test))

    return EventResult()


def setup_cpython_resources(target: str) -> None:
    """CPython's ``test.support`` resources, as regrtest would set them for this machine."""
    from test import support
    from test.libregrtest.cmdline import ALL_RESOURCES

    support.verbose = 0
    # what regrtest enables, minus what leaves this machine: loaded with unittest, use_resources
    # stays None and every resource counts as enabled, so 'network' tests would resolve and
    # connect to hosts on the internet (test_ssl's NetworkedTests, test_socket's test_idna...)
    # test_socketserver and test_timeout ask for 'network' but their tests stay on localhost
    # once local_rules deselected or redirected the few that do not: they keep it
    denied = {"urlfetch"} if local_rules.granted_network(target) else {"network", "urlfetch"}
    support.use_resources = [r for r in ALL_RESOURCES if r not in denied]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat_tests.worker")
    parser.add_argument("--target", required=True, help="module (or module.Class) under test/")
    parser.add_argument("--mode", choices=("stock", "multisock"), required=True)
    parser.add_argument("--events", required=True, help="JSON-lines file to append to")
    parser.add_argument("--start", type=int, default=0, help="index of the first test to run")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-test limit, seconds")
    parser.add_argument("--ids-file", help="run only the test ids listed in this file")
    parser.add_argument("--list", action="store_true", help="only list the test ids")
    parser.add_argument("--fd-mode", choices=("readiness", "bridged"),
                        help="multisock's fd mode (as `multisock run --fd-mode`)")
    args = parser.parse_args(argv)

    events = Events(args.events)
    faulthandler.enable()
    faulthandler.dump_traceback_later(args.timeout * 2, exit=True)  # import + collection
    gevent = is_gevent_target(args.target)
    # gevent's modules: gevent.monkey.patch_all() first (stock), or it and then multisock's, as
    # MULTISOCK=1 MULTISOCK_GEVENT=1 in the environment does
    if args.mode == "multisock":
        activate_multisock(gevent, args.fd_mode)
    elif gevent:
        patch_gevent_stock()

    import unittest

    if gevent:
        setup_gevent_resources()
    else:
        setup_cpython_resources(args.target)
    if not gevent:
        local_rules.apply_redirects(args.target)
    tests = load(args.target)
    local_rules.deselect(tests)
    all_ids = [short_id(t.id()) for t in tests]
    if args.list or args.start == 0:
        events.emit(event="ids", ids=all_ids)
    if args.list:
        events.emit(event="done")
        return 0
    wanted: set[str] | None = None
    if args.ids_file:
        with open(args.ids_file, encoding="utf-8") as f:
            wanted = {line.strip() for line in f if line.strip()}
    index_of = {id(t): i for i, t in enumerate(tests)}
    chosen = [t for i, t in enumerate(tests)
              if i >= args.start and (wanted is None or short_id(t.id()) in wanted)]
    result = make_result(events, args.timeout, index_of)
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    unittest.TestSuite(chosen).run(result)
    faulthandler.cancel_dump_traceback_later()
    events.emit(event="done")
    sys.stdout.flush()
    sys.stderr.flush()
    # threads a test left behind must not keep the process (and so the run) alive
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
