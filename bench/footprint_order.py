"""Which compiled functions the footprint row's sequence runs: ``python bench/footprint_order.py``.

Run with the interpreter of a compiled build (``MULTISOCK_COMPILE=1 pip install .``), from
anywhere; needs valgrind. Runs ``import multisock`` + ``patch_all()`` + one host (the
footprint row, bench/worker.py) under callgrind, and writes the functions of the mypyc shared
libraries that ran, in the order first seen, to ``bench/import_time_functions.txt`` (or
the path given as the argument: run from a copy of bench/, the copy's file).
setup.py lays those out together at the start of the extensions' code: the kernel maps up to
64 KiB around each page fault, so code that runs once at import, scattered among the rest,
makes most of the extension resident (docs/performance.md, "The compiled build",
"Footprint"). Names the source no longer has are ignored at link time; rerun this after
changes to what import or a host's construction runs, then rebuild.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "import_time_functions.txt"
# as bench/worker.py's footprint() runs it, collections included (they run the types'
# traverse and clear functions)
SEQUENCE = """
import gc, json, os, sys, time
import socket, threading
gc.collect()
import multisock
assert multisock.COMPILED, "run this with the compiled build's interpreter"
import multisock.monkey
from multisock.runtime import default_host
multisock.monkey.patch_all()
default_host()
gc.collect()
"""
HEADER = """\
# The compiled build's functions that import multisock + patch_all() + one host runs, in the
# order they first run (bench/footprint_order.py writes this file; setup.py lays them out
# together at the start of the extension's code). Stale names are ignored by the linker.
"""
_COMPRESSED = re.compile(r"\((\d+)\)(?: (.*))?")


def executed(callgrind_out: str) -> list[str]:
    """Functions of the ``*__mypyc`` libraries that ran, in order, from a callgrind file
    (its name compression: ``fn=(12) name`` once, then ``fn=(12)``)."""
    tables: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}

    def name(kind: str, spec: str) -> str:
        m = _COMPRESSED.match(spec)
        if not m:
            return spec
        if m.group(2) is not None:
            tables[kind][m.group(1)] = m.group(2)
        return tables[kind].get(m.group(1), "")

    seen: dict[str, None] = {}
    ob = cob = ""
    with open(callgrind_out, encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            if key == "ob":
                ob = name("ob", value)
            elif key == "cob":
                cob = name("ob", value)
            elif key in ("fn", "cfn"):
                fn = name("fn", value).split("'")[0]  # callgrind marks recursion as f'2
                where = cob if key == "cfn" and cob else ob
                if key == "cfn":
                    cob = ""
                # valgrind names no object ("???") for code outside the ``.text`` section,
                # as in a build that setup.py has laid out already: taken too
                if (where == "???" or "__mypyc" in os.path.basename(where)) and fn \
                        and not fn.startswith("0x"):
                    seen.setdefault(fn)
    return list(seen)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, "-c", SEQUENCE], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        names = executed(out)
    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out_path.write_text(HEADER + "".join(n + "\n" for n in names), encoding="utf-8")
    print(f"{len(names)} functions -> {out_path}")


if __name__ == "__main__":
    main()
