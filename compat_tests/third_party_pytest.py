"""Third-party test suites under the pytest plugin: kernel vs ``--multisock`` vs impaired.

    python -m compat_tests.third_party_pytest [--suite requests] [--workdir /tmp/ms-3p]
        [--modes kernel,multisock,impaired,bridged]

Downloads the suite's sdist at the installed version (``pip download --no-binary``),
unpacks it, and runs its own tests three times with plain pytest, ``--multisock`` and
``--multisock --multisock-delay 2ms --multisock-loss 1%`` (fixed ``--multisock-seed``), then
prints the pass/fail/skip counts and every test whose outcome differs from the kernel run.
Not part of the default suite (minutes; needs the suite's test dependencies, e.g. for
requests ``pip install pytest-httpbin pytest-mock trustme``). Results: docs/pytest.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

#: suite -> (distribution, test directory inside the sdist, extra pytest arguments)
SUITES: dict[str, tuple[str, str, list[str]]] = {
    "requests": ("requests", "tests", []),
    "urllib3": ("urllib3", "test", ["-m", "not requires_network"]),
    # urllib3's HTTPS and socket-level TLS tests again with pyOpenSSL injected: OpenSSL does
    # its I/O on fileno() (needs pyOpenSSL; run it with --modes kernel,bridged)
    # (not loaded: anyio's pytest plugin, which imports trio before multisock activates, and
    # pytest-socket, whose guarded socket class trio's server then accepts on; the kernel
    # run gives the same counts without them)
    # (the plugin's open-socket report is off: urllib3's filterwarnings=error makes each
    # report a teardown error, 119 of them, where the kernel run, with no report, has none)
    "urllib3-pyopenssl": ("urllib3", "test/contrib/test_pyopenssl.py",
                          ["-m", "not requires_network", "-p", "no:anyio", "-p", "no:socket",
                           "-W", "ignore::multisock.pytest_plugin.UnclosedSocketWarning"]),
    # its tests run their servers on local sockets in threads (needs cryptography, pysocks)
    "httplib2": ("httplib2", "tests", []),
}
MODES: dict[str, list[str]] = {
    "kernel": [],
    "multisock": ["--multisock", "--multisock-seed", "1"],
    "impaired": ["--multisock", "--multisock-seed", "1", "--multisock-delay", "2ms",
                 "--multisock-loss", "1%"],
    # bridged fd mode (not run unless named in --modes): fileno() carries the bytes
    "bridged": ["--multisock", "--multisock-seed", "1", "-p", "compat_tests.bridged_fd_mode"],
}
DEFAULT_MODES = "kernel,multisock,impaired"
ROOT = Path(__file__).resolve().parents[1]  # (so that the suite's pytest finds compat_tests)


def fetch(dist: str, workdir: Path) -> Path:
    version = importlib.metadata.version(dist)
    root = workdir / f"{dist}-{version}"
    if root.exists():
        return root
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--no-binary", ":all:", f"{dist}=={version}", "-d", str(workdir)],
                   check=True)
    (archive,) = workdir.glob(f"{dist}-{version}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return root


def outcomes(junit: Path) -> dict[str, str]:
    """test id -> passed / failed / error / skipped, from a JUnit XML report."""
    out: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcome = ("error" if "error" in kinds else "failed" if "failure" in kinds
                   else "skipped" if "skipped" in kinds else "passed")
        if out.get(name, "passed") == "passed":  # an error at teardown after a pass counts
            out[name] = outcome
    return out


def run(root: Path, tests: str, extra: list[str], mode: str, timeout: int) -> dict[str, str]:
    junit = root / f"junit-{mode}.xml"
    command = [sys.executable, "-m", "pytest", tests, "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly", f"--timeout={timeout}", f"--junitxml={junit}",
               *extra, *MODES[mode]]
    print("$", " ".join(command), flush=True)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=path)
    log = root / f"pytest-{mode}.log"
    with log.open("w") as out:  # (a file, not a pipe: a child the suite leaves running
        # holding the pipe would keep the read waiting after pytest exits)
        subprocess.run(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL)
    tail = [line for line in log.read_text().splitlines() if line.strip()][-1:]
    print("  ", *tail, flush=True)
    return outcomes(junit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="requests")
    parser.add_argument("--workdir", default="/tmp/ms-3p")
    parser.add_argument("--timeout", type=int, default=60, help="per-test timeout (s)")
    parser.add_argument("--modes", default=DEFAULT_MODES,
                        help=f"comma-separated, of {', '.join(MODES)}")
    args = parser.parse_args(argv)
    dist, tests, extra = SUITES[args.suite]
    root = fetch(dist, Path(args.workdir))
    results = {mode: run(root, tests, extra, mode, args.timeout)
               for mode in args.modes.split(",")}
    print(f"\n{args.suite} {importlib.metadata.version(dist)}: outcome counts")
    kinds = ("passed", "failed", "error", "skipped")
    print(f"  {'mode':<10}" + "".join(f"{k:>9}" for k in kinds))
    for mode, res in results.items():
        counts = [sum(1 for v in res.values() if v == k) for k in kinds]
        print(f"  {mode:<10}" + "".join(f"{c:>9}" for c in counts))
    base = results.get("kernel", {})
    for mode, res in results.items():
        if mode == "kernel":
            continue
        changed = sorted(t for t in res if base.get(t) != res[t])
        print(f"\n{mode}: {len(changed)} test(s) differ from the kernel run")
        for test in changed:
            print(f"  {test}: kernel {base.get(test)} -> {res[test]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
