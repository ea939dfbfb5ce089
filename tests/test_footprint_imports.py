"""The footprint row's sequence - ``import multisock``, ``patch_all()``, one host - loads no
optional layer and none of the heavy stdlib modules it does not use.

What made the row grow from ~2.1 to ~4.2 MiB (and ~4.9 MiB in an interpreter whose start-up
had not already loaded pathlib): ``importlib.abc`` (its 3.11 module imports
``importlib.resources`` and with it tempfile, shutil, bz2, lzma, pathlib, urllib.parse,
ipaddress), the whole security layer built into every host, and ``pickle`` for the fork
channel. Each is now imported where it is used (``docs/performance.md``, "Footprint").
The test counts modules, never bytes: it runs the sequence in a fresh interpreter and names
every listed module that the sequence added to ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import multisock

# the package's own optional layers: loaded only when a feature is asked for
OPTIONAL_LAYERS = (
    "multisock.security", "multisock.gateway", "multisock.sim", "multisock.routingd",
    "multisock.pytest_plugin", "multisock.tls", "multisock.resolver", "multisock.hosts",
    "multisock.net.tun", "multisock.net.pcap", "multisock.net.virtual_driver",
    "multisock.net.gevent_driver", "multisock.stack.raw", "multisock.launch",
    "multisock.options", "multisock.cli",
)
# stdlib and third-party modules the sequence has no use for (each costs 0.1-4.5 MiB)
HEAVY = (
    "importlib.abc", "importlib.resources", "importlib.metadata", "tempfile", "shutil",
    "bz2", "lzma", "pathlib", "pickle", "ssl", "_ssl", "hashlib", "_hashlib", "argparse",
    "json", "email", "http", "logging", "dataclasses", "inspect", "ast", "dis", "shlex",
    "ipaddress", "urllib", "zipfile", "datetime", "dns", "gevent",
)
# stdlib modules a host uses later but not while it is built, each imported by the function
# that first needs it (0.06-0.15 MiB each): zlib by the multipath / policy-routing flow hash
# (stack/ip.py), _blake2 by a stack's first keyed hash (stack/tcp/isn.py: ISN, SYN cookie),
# weakref by a TIME-WAIT record's link to its control block (stack/tcp/timewait.py)
DEFERRED = ("zlib", "_blake2", "weakref")

# ``import socket, threading`` first: the baseline every program has (bench/worker.py)
_PROBE = """
import socket, sys, threading
before = set(sys.modules)
import multisock
import multisock.monkey
from multisock.runtime import default_host
multisock.monkey.patch_all()
host = default_host()
for step in sys.argv[1:]:
    exec(step)
added = sorted(set(sys.modules) - before)
import json
print(json.dumps(added))
"""
# zero-code activation (MULTISOCK=1, what the .pth file and ``run`` do): one host with the
# gateway and the gateway's DNS resolver, configured, so those layers load here
_ENV_PROBE = """
import socket, sys, threading
before = set(sys.modules)
import multisock._activate
multisock._activate.main({"MULTISOCK": "1"})
added = sorted(set(sys.modules) - before)
import json
print(json.dumps(added))
"""


def added_modules(*steps: str, probe: str = _PROBE) -> list[str]:
    """Modules the sequence (then ``steps``, Python statements) adds, in a fresh interpreter.

    ``-S``: no site start-up, so nothing that a ``.pth`` file happens to import (an editable
    install's finder loads pathlib) hides a module from the count. The package is found from
    the same place as in this process (source checkout or installed, pure or compiled)."""
    path = [str(Path(multisock.__file__).resolve().parent.parent), *filter(None, sys.path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
    env["PYTHONPATH"] = os.pathsep.join(path)
    result = subprocess.run([sys.executable, "-S", "-c", probe, *steps], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    added: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return added


def _hits(added: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in added if any(m == n or m.startswith(n + ".") for n in names)]


def test_activation_loads_no_optional_layer() -> None:
    added = added_modules()
    assert "multisock.net.host" in added  # the probe really built a host
    assert not _hits(added, OPTIONAL_LAYERS), (
        "import + patch_all() + one host loaded optional layers; import them where they are "
        f"used: {_hits(added, OPTIONAL_LAYERS)}")


def test_activation_loads_no_heavy_module() -> None:
    added = added_modules()
    assert not _hits(added, HEAVY), (
        "import + patch_all() + one host loaded modules it does not use (see docs/performance.md,"
        f" Footprint): {_hits(added, HEAVY)}")


def test_activation_defers_what_a_host_runs_later() -> None:
    added = added_modules()
    assert not _hits(added, DEFERRED), (
        "import + patch_all() + one host loaded modules only later work uses (see "
        f"docs/performance.md, Footprint): {_hits(added, DEFERRED)}")


def test_the_deferred_modules_load_on_use() -> None:
    """The same probe sees zlib and _blake2 once the flow hash and the ISN hash run."""
    added = added_modules(
        "host.ip._flow_hash(b'\\x0a\\0\\0\\1', b'\\x0a\\0\\0\\2')",
        "from multisock.stack.tcp import isn; isn.initial_sequence(b'k', bytes(4), 1, "
        "bytes(4), 2, 0.0)",
    )
    assert {"zlib", "_blake2"} <= set(added)


def test_flow_hash_seed_is_the_crc_of_the_host_name() -> None:
    """The per-host seed, now computed at the first flow hash, is what it was when the
    constructor computed it: CRC-32 of the name (so equal-cost paths are chosen as before)."""
    import zlib

    from multisock.stack.ip import IPStack

    def reference(name: str, src: bytes, dst: bytes, ports: bytes) -> int:
        h = zlib.crc32(ports, zlib.crc32(dst, zlib.crc32(src, zlib.crc32(name.encode()))))
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        return h ^ (h >> 16)

    for name in ("h1", "router"):
        ip = IPStack(name)
        flows = ((b"", bytes([10, 0, 0, 2]), b""),
                 (bytes([10, 0, 0, 1]), bytes([10, 0, 1, 9]), b"\x06\x01\x02\x03\x04"))
        for src, dst, ports in flows:
            assert ip._flow_hash(src, dst, ports) == reference(name, src, dst, ports)


def test_environment_activation_defers_dnspython() -> None:
    """The gateway's resolver is built at start-up, but dnspython (which loads
    importlib.metadata, email, zipfile and hashlib: ~7.5 MiB) only on the first lookup.
    (``options`` and the resolver still load dataclasses here: docs/performance.md.)"""
    added = added_modules(probe=_ENV_PROBE)
    assert {"multisock.gateway", "multisock.resolver"} <= set(added)  # activated as asked
    late = ("dns", "hashlib", "_hashlib", "ssl", "email", "importlib.metadata", "importlib.abc",
            "zipfile", "tempfile", "pickle", "ipaddress", "multisock.security", "multisock.tls")
    assert not _hits(added, late), f"loaded at start-up: {_hits(added, late)}"


def test_the_probe_sees_a_layer_loaded_on_use() -> None:
    """The check can fail: the same probe names the security layer (and shlex, its rule
    parser's) once a host's firewall is used, pickle once the fork channel sends, and the
    pcap writer once a network captures."""
    added = added_modules(
        "host.firewall",
        "import io; host.net.capture(io.BytesIO())",
        "import multisock.api.forking as f, socket as s; a, b = s.socketpair(); "
        "f._send_msg(a, 1); assert f._recv_msg(b) == 1",
    )
    assert {"multisock.security", "multisock.security.firewall", "multisock.net.pcap"} <= set(
        _hits(added, OPTIONAL_LAYERS))
    assert {"shlex", "pickle"} <= set(_hits(added, HEAVY))


def _setup_groups() -> dict[str, list[str]]:
    """setup.py's ``GROUPS`` (read, not run: running it would build)."""
    import ast

    setup = Path(__file__).resolve().parent.parent / "setup.py"
    for node in ast.parse(setup.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "GROUPS":
            assert node.value is not None
            groups: dict[str, list[str]] = ast.literal_eval(node.value)
            return groups
    raise AssertionError("setup.py has no GROUPS")


def test_row_imports_no_module_of_a_separate_group() -> None:
    """The compiled build puts the modules that the row's sequence does not import in mypyc
    groups of their own (setup.py, ``GROUPS``), so that their shared libraries - their code,
    data, relocations and constants - are not loaded by it. A module of the sequence that
    imports one at its top level would load its whole group: this names it. On the compiled
    build, the groups' libraries themselves must be absent too."""
    groups = _setup_groups()
    assert groups, "setup.py's GROUPS is empty"
    added = added_modules()
    for name, paths in groups.items():
        modules = [p[:-3].replace("/", ".") for p in paths]
        assert not set(modules) & set(added), (name, sorted(set(modules) & set(added)))
        assert f"{name}__mypyc" not in added, f"the {name} group's library was loaded"
    if multisock.COMPILED:
        assert "multisock__mypyc" in added  # the probe sees the libraries it loads
