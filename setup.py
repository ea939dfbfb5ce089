"""Installs ``multisock-activate.pth`` into site-packages, beside the ``multisock`` package.

Everything else is in pyproject.toml. Python runs each ``import`` line of a ``.pth`` file in
site-packages at start-up; this one checks ``MULTISOCK`` itself, so a process without it
pays one dictionary lookup and imports nothing, and a process with ``MULTISOCK=1`` is
activated before its own code runs (``multisock/_activate.py``), like the checkout's
``PYTHONPATH=shims``. setuptools only puts packages in the wheel, so ``build_py`` writes the
file at the root of the build tree (a wheel's root is site-packages). An editable install
builds nothing there: its wheel is assembled from the directory that setuptools points the
``install`` command at, so the file goes there too.

``MULTISOCK_COMPILE=1 pip install .`` builds the compiled variant: the same source, with the
modules where the time goes (``wire/`` and ``stack/``, the boundary in docs/architecture.md,
and the hot modules of ``net/`` and of the socket cores above it, ``HOT_ABOVE``) compiled to
C extensions by mypyc. Without the variable nothing is compiled and the package is
pure Python (the default, and always for ``pip install -e .``). mypyc comes with mypy, which
the build asks for only when compiling (``setup_requires``: what setuptools' PEP 517 backend
hands pip as the build's own requirements).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "multisock-activate.pth"
PTH_LINE = ('import os; os.environ.get("MULTISOCK", "") in ("", "0") or '
            '__import__("multisock._activate")._activate.main()\n')


class BuildPyWithActivation(build_py):
    """build_py that also writes the activation .pth at the root of what gets installed."""

    def run(self) -> None:
        super().run()
        self._write(os.path.join(self.build_lib, PTH_NAME))
        if getattr(self, "editable_mode", False):
            root = self.get_finalized_command("install").install_lib
            if root and any(name.endswith(".dist-info") for name in os.listdir(root)):
                self._write(os.path.join(root, PTH_NAME))
            else:
                self.warn(f"{PTH_NAME} not installed (editable wheel layout not recognised): "
                          "MULTISOCK=1 needs PYTHONPATH=shims in this install")

    def _write(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(PTH_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH_NAME)]


# Left interpreted inside the compiled boundary, each with the reason (path: why).
INTERPRETED: dict[str, str] = {}

# Compiled above the boundary: the modules of net/ and of the facade that every socket call
# and every delivered packet passes through (docs/performance.md, "The compiled build").
# Their classes are native, the socket cores included (a forked child's stand-ins for them
# are separate objects, api/forking.py) and ``Driver`` too (net.backends tracks live drivers
# through a weakly held registration, as a native class has no __weakref__). The rest of
# net/ (the network builder, pcap, TUN, the gevent
# and virtual-time drivers, units) runs once per setup or off the default path; api/'s other
# modules (options, ancillary, multicast, forking, the fd bridge) per call that needs them.
HOT_ABOVE = [
    "multisock/net/driver.py",
    "multisock/net/host.py",
    "multisock/net/link.py",
    "multisock/net/switch.py",
    "multisock/net/impairments.py",
    # not hot, but Driver's subclasses: a native class's subclasses must be compiled too
    "multisock/net/gevent_driver.py",
    "multisock/net/virtual_driver.py",
    "multisock/api/core.py",
    "multisock/api/stream.py",
    "multisock/api/dgram.py",
]
# Not compiled above the boundary, with the reason (path: why).
NOT_COMPILED: dict[str, str] = {
    # the class programs and the stdlib subclass (ssl.SSLSocket, multisock.tls's combined
    # classes, socketserver's users) and activation patches: it must stay a Python class
    # with __weakref__ in its __slots__, and its body defines methods only where the kernel's
    # socket has them (``if hasattr(_KernelSocket, "sendmsg_afalg"):``), which mypyc refuses
    # in a class body. Its methods are thin: each hands over to the core (api/stream.py),
    # which is compiled.
    "multisock/socket.py": "a Python class by contract (subclassed, patched, weakly referenced)",
}


# mypyc groups: each is one shared library, loaded at the first import of any of its modules,
# when it also creates the statics (string constants, ...) of all its modules and the dynamic
# loader relocates all its data. The row "footprint: import + patch_all + host" imports the
# main group's modules only; these are off that path, each group with the reason. Calls from
# one group into another go through a table of pointers, and gcc cannot inline them: the
# socket cores (api/stream.py, dgram.py) are off the row's path too, but in a group of their
# own bulk transfer ran 8-15 % slower (docs/performance.md), so they stay in the main group.
GROUPS: dict[str, list[str]] = {
    # imported only by the features that use them: the L2 codecs (no module of the
    # package's socket path imports them), the gevent and virtual-time drivers. Not
    # stack/raw.py: api/dgram.py imports it (for raw ICMP sockets), and a group whose module
    # imports another group's, even inside a function, loads that group's library with its own
    "multisock_cold": ["multisock/wire/arp.py", "multisock/wire/ethernet.py",
                       "multisock/net/gevent_driver.py", "multisock/net/virtual_driver.py"],
}


# groups whose code runs per feature, not per packet: compiled for size (-Os)
COLD_GROUPS = {"multisock_cold__mypyc"}


def compiled_groups() -> list[tuple[list[str], str]]:
    """mypyc's ``separate`` argument: ``GROUPS``, then the group ``multisock`` of the rest."""
    grouped = {path for paths in GROUPS.values() for path in paths}
    rest = [p for p in compiled_modules() if p not in grouped]
    return [(rest, "multisock"), *((paths, name) for name, paths in GROUPS.items())]


def compiled_modules() -> list[str]:
    """The source files mypyc compiles: every module of wire/ and stack/ but the packages'
    ``__init__`` files (a few lines each; they stay Python) and ``INTERPRETED``, then
    ``HOT_ABOVE``."""
    paths = sorted(glob.glob("multisock/wire/*.py") + glob.glob("multisock/stack/**/*.py",
                                                                   recursive=True))
    inside = [p for p in paths if not p.endswith("__init__.py") and p not in INTERPRETED]
    return inside + HOT_ABOVE


def compile_requested() -> bool:
    return os.environ.get("MULTISOCK_COMPILE", "") not in ("", "0")


def compiled_build() -> dict[str, Any]:
    """setup() arguments for the compiled variant (none when it was not asked for)."""
    if not compile_requested():
        return {}
    if "editable_wheel" in sys.argv or "develop" in sys.argv:
        # an editable install would put the extensions beside the checkout's sources, where
        # they would shadow every later edit; the compiled build is a plain install
        raise SystemExit("MULTISOCK_COMPILE=1 needs a non-editable install: "
                         "MULTISOCK_COMPILE=1 pip install .")
    # a build directory of its own: a later pure build must not pack these extensions from
    # build/lib, where setuptools keeps what it built last
    args: dict[str, Any] = {"setup_requires": ["mypy>=1.8"],
                            "options": {"build": {"build_base": "build/compiled"}}}
    try:
        from mypyc.build import mypycify
    except ImportError:
        # the backend's first pass only collects setup_requires (mypy is not there yet); any
        # pass that builds must have it
        if any(cmd in sys.argv for cmd in ("bdist_wheel", "build_ext", "build", "install")):
            raise SystemExit("MULTISOCK_COMPILE=1: mypyc (from mypy) is not installed in the "
                             "build environment") from None
        return args
    # opt_level 3 is mypyc's default; debug_level 0: no debug information (it is never
    # loaded, but gcc spends time writing it). Groups (``GROUPS``): one shared library per
    # group, each named rather than a hash of its file list
    extensions = mypycify(compiled_modules(), opt_level="3", debug_level="0",
                          separate=compiled_groups(), target_dir="build/compiled/c")
    cflags, ldflags = ["-fvisibility=hidden"], _layout_flags()
    if ldflags:
        cflags.append("-ffunction-sections")
    # a shim (the few lines of PyInit_* of each module, calling into its group) is loaded
    # for each module that interpreted code imports (10 on the footprint row's path): in
    # two pages (text and header together, data and GOT together) rather than GNU ld's
    # default four (separate code, read-only-after-relocation) - 8 KiB less each
    shim_ldflags = ["-Wl,-z,noseparate-code", "-Wl,-z,norelro"]
    shim_ldflags = shim_ldflags if _links(shim_ldflags) else []
    for extension in extensions:
        # only PyInit_* (default visibility by CPython's own macro) needs exporting: the
        # modules reach the group's code through a capsule. Hidden symbols make a smaller
        # dynamic symbol table and fewer relocations, both paid at import
        extension.extra_compile_args = [*extension.extra_compile_args, *cflags]
        if not extension.name.endswith("__mypyc"):
            extension.extra_link_args = [*extension.extra_link_args, *shim_ldflags]
            continue
        extension.extra_link_args = [*extension.extra_link_args, *ldflags]
        if extension.name in COLD_GROUPS:
            # smaller code for what runs per feature, not per packet (the last -O wins)
            extension.extra_compile_args.append("-Os")
    # the groups' C files compile side by side
    args["options"]["build_ext"] = {"parallel": os.cpu_count() or 1}
    args["ext_modules"] = extensions
    return args


# What runs once, at import and while the first host is built: the modules' top levels,
# the classes' set-up, the constructors. Laid out together (gcc's one section per function,
# ordered by the linker), they share a few pages; scattered among the functions of their
# modules, as gcc lays them out, each import faults in the pages around them (the kernel maps
# up to 64 KiB around a fault) and most of the extension's code becomes resident though it
# never runs. First the functions that the row's sequence was seen running
# (``IMPORT_TIME_LIST``, written by bench/footprint_order.py), then these patterns, which
# cover most of them should the list be stale. The footprint row of ``python -m bench``
# measures it.
IMPORT_TIME_LIST = "bench/import_time_functions.txt"
IMPORT_TIME_SECTIONS = [
    ".text.CPyDef_*_____top_level__",
    ".text.CPyExec_*",
    ".text.CPyInit*",
    ".text.CPyGlobalsInit",
    ".text.CPyStatics_*",
    ".text.CPyDef_*_setup",
    ".text.CPyDef_*_____mypyc_defaults_setup",
    ".text.CPyDef_*_____init__",
    ".text.CPyPy_*_____init__",
    ".text.*_new",
    ".text.*_init",
]


def _import_time_sections() -> list[str]:
    listed: list[str] = []
    if os.path.exists(IMPORT_TIME_LIST):
        with open(IMPORT_TIME_LIST, encoding="utf-8") as handle:
            listed = [f".text.{line.strip()}" for line in handle
                      if line.strip() and not line.startswith("#")]
    return listed + IMPORT_TIME_SECTIONS


def _links(flags: list[str]) -> bool:
    """Whether the C compiler links a shared object with these flags (no warning either)."""
    import subprocess
    import tempfile

    compiler = os.environ.get("CC", "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w", encoding="utf-8") as handle:
            handle.write("int probe(void) { return 0; }\n")
        try:
            done = subprocess.run([*compiler, "-shared", "-fPIC", "-Wl,--fatal-warnings",
                                   *flags, source, "-o", os.path.join(tmp, "probe.so")],
                                  capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
    return done.returncode == 0


def _layout_flags() -> list[str]:
    """Link flags that lay the import-time code out together, and pack the relocations.

    GNU ld with ``-z pack-relative-relocs`` (binutils 2.38, glibc 2.36): the ~13,600 relative
    relocations, 24 bytes each (~320 KiB the dynamic loader reads, hence resident, at
    import), become a bitmap of ~6 KiB; the order comes from a linker script that
    ``INSERT``s one output section of the import-time functions before ``.text``. Else gold's
    ``--section-ordering-file`` (gold has no packed relocations); else nothing."""
    base = os.path.abspath("build/compiled")
    os.makedirs(base, exist_ok=True)
    sections = _import_time_sections()
    if _links(["-Wl,-z,pack-relative-relocs"]):
        script = os.path.join(base, "import-order.ld")
        with open(script, "w", encoding="utf-8") as handle:
            body = "".join(f"    *({section})\n" for section in sections)
            handle.write(f"SECTIONS\n{{\n  .text.import_time :\n  {{\n{body}  }}\n}}\n"
                         "INSERT BEFORE .text;\n")
        return ["-Wl,-z,pack-relative-relocs", f"-Wl,-T,{script}"]
    if shutil.which("ld.gold"):
        order = os.path.join(base, "import-order.txt")
        with open(order, "w", encoding="utf-8") as handle:
            handle.write("\n".join(sections) + "\n")
        return ["-fuse-ld=gold", f"-Wl,--section-ordering-file={order}"]
    return []


setup(cmdclass={"build_py": BuildPyWithActivation}, **compiled_build())
