"""The parent side: start workers, survive hung or crashing tests, collect one outcome per test.

A *target* is a module of CPython's ``test`` package (``test_socket``,
``test_asyncio.test_sock_lowlevel``) or a dotted part of one (``test_socket.GeneralModuleTests``).
For each target and mode (stock, multisock) :func:`run_mode` starts
``python -m compat_tests.worker`` and tails its events file. When a worker ends without its
``done`` event (its faulthandler watchdog fired on a hung test, or the process crashed, or the
parent's own watchdog killed it), the test it was in is recorded as ``timeout``/``crash`` and a
fresh worker resumes at the next index, so one bad test costs at most one timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSING = ("pass", "xfail")
# how long the parent waits beyond the worker's own per-test limit before killing it
GRACE = 30.0


@dataclass
class ModeResult:
    target: str
    mode: str
    ids: list[str] = field(default_factory=list)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    fixtures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    load_error: str = ""

    def outcome(self, test_id: str) -> str:
        return str(self.outcomes.get(test_id, {}).get("outcome", "missing"))

    def counts(self) -> dict[str, int]:
        c = {"run": 0, "passed": 0, "failed": 0, "errored": 0, "skipped": 0}
        for record in self.outcomes.values():
            o = record["outcome"]
            c["run"] += 1
            if o in PASSING:
                c["passed"] += 1
            elif o in ("fail", "xpass"):
                c["failed"] += 1
            elif o == "skip":
                c["skipped"] += 1
            else:
                c["errored"] += 1
        return c


def _worker_env(mode: str) -> dict[str, str]:
    env = dict(os.environ)
    # activation is the worker's job, in-process; never through the shims' environment
    for key in list(env):
        if key == "MULTISOCK" or key.startswith("MULTISOCK_"):
            del env[key]
    path = env.get("PYTHONPATH", "")
    parts = [p for p in path.split(os.pathsep) if p and "shims" not in Path(p).parts]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *[p for p in parts if p != str(ROOT)]])
    env.setdefault("PYTHONFAULTHANDLER", "1")
    return env


def _read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    out = []
    consumed = 0
    for line in data.split(b"\n")[:-1]:  # only complete lines
        consumed += len(line) + 1
        if line.strip():
            out.append(json.loads(line))
    return out, offset + consumed


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text[-limit:]


def run_mode(target: str, mode: str, timeout: float, logdir: Path,
             only: list[str] | None = None, tag: str = "",
             fd_mode: str | None = None) -> ModeResult:
    """Run every test of ``target`` in ``mode``, resuming after timeouts and crashes."""
    result = ModeResult(target, mode)
    started = time.monotonic()
    start = 0
    attempt = 0
    ids_file = None
    if only is not None:
        ids_file = logdir / f"{target}.{mode}{tag}.ids"
        ids_file.write_text("\n".join(only) + "\n")
    while True:
        attempt += 1
        events_path = logdir / f"{target}.{mode}{tag}.{attempt}.events"
        log_path = logdir / f"{target}.{mode}{tag}.{attempt}.log"
        cmd = [sys.executable, "-m", "compat_tests.worker", "--target", target, "--mode", mode,
               "--events", str(events_path), "--start", str(start), "--timeout", str(timeout)]
        if ids_file is not None:
            cmd += ["--ids-file", str(ids_file)]
        if fd_mode and mode == "multisock":
            cmd += ["--fd-mode", fd_mode]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=str(logdir), env=_worker_env(mode),
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        offset = 0
        last_progress = time.monotonic()
        current: dict[str, Any] | None = None  # the started, unfinished test
        last_index = start - 1
        done = False
        killed = False
        while True:
            records, offset = _read_events(events_path, offset)
            for rec in records:
                last_progress = time.monotonic()
                kind = rec["event"]
                if kind == "ids":
                    result.ids = rec["ids"]
                elif kind == "start":
                    current = rec
                    current["t0"] = time.monotonic()
                elif kind == "end":
                    result.outcomes[rec["id"]] = {k: rec[k] for k in ("outcome", "detail",
                                                                        "seconds")}
                    last_index = max(last_index, int(rec["index"]))
                    current = None
                elif kind == "fixture":
                    result.fixtures.append(rec)
                elif kind == "done":
                    done = True
            if done:
                break
            code = proc.poll()
            if code is not None:
                records, offset = _read_events(events_path, offset)
                if records:
                    continue  # process what it wrote before dying
                break
            limit = timeout * (2 if current is None else 1) + GRACE
            if time.monotonic() - last_progress > limit:
                killed = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.05)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if done:
            break
        if not result.ids and only is None:
            result.load_error = f"worker died before listing tests (exit {proc.returncode}):\n" \
                + _tail(log_path)
            break
        tail = _tail(log_path)
        if current is not None:
            elapsed = time.monotonic() - float(current["t0"])
            what = "timeout" if killed or elapsed >= timeout * 0.9 else "crash"
            result.outcomes[current["id"]] = {
                "outcome": what, "seconds": round(elapsed, 3),
                "detail": f"{what} after {elapsed:.1f}s (worker exit {proc.returncode}); "
                          f"log tail:\n{tail}"}
            result.notes.append(f"{current['id']}: {what}")
            start = int(current["index"]) + 1
        else:
            # died between tests (in a fixture): blame the next test and move past it
            nxt = last_index + 1
            if only is not None or nxt >= len(result.ids):
                result.notes.append(f"worker ended between tests (exit {proc.returncode})")
                break
            test_id = result.ids[nxt]
            result.outcomes[test_id] = {
                "outcome": "crash", "seconds": 0.0,
                "detail": f"worker ended outside a test before this one (exit "
                          f"{proc.returncode}); log tail:\n{tail}"}
            result.notes.append(f"{test_id}: worker ended in a fixture before it")
            start = nxt + 1
        if start >= len(result.ids) and only is None:
            break
    _apply_fixtures(result, only)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _apply_fixtures(result: ModeResult, only: list[str] | None) -> None:
    """Tests a failing/skipping setUpClass or setUpModule kept from running get its outcome."""
    wanted = result.ids if only is None else only
    for test_id in wanted:
        if test_id in result.outcomes:
            continue
        outcome, detail = "error", "not run (no outcome recorded)"
        for fx in result.fixtures:
            desc = str(fx["id"])
            if "(" in desc and desc.endswith(")"):
                scope = desc[desc.index("(") + 1:-1]
                scope = scope[len("test."):] if scope.startswith("test.") else scope
                if test_id.startswith(scope + ".") and desc.startswith("setUp"):
                    outcome, detail = fx["outcome"], f"{desc}: {fx['detail']}"
                    break
        result.outcomes[test_id] = {"outcome": outcome, "detail": detail, "seconds": 0.0}


def list_ids(target: str, logdir: Path) -> list[str]:
    """Collect the test ids of ``target`` without running anything (stock interpreter)."""
    events_path = logdir / f"{target}.list.events"
    cmd = [sys.executable, "-m", "compat_tests.worker", "--target", target, "--mode", "stock",
           "--events", str(events_path), "--list"]
    subprocess.run(cmd, cwd=str(logdir), env=_worker_env("stock"), stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=300)
    records, _ = _read_events(events_path, 0)
    for rec in records:
        if rec["event"] == "ids":
            return list(rec["ids"])
    return []


def new_logdir(keep: str | None) -> Path:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        return path.resolve()
    return Path(tempfile.mkdtemp(prefix="compat_tests-"))
