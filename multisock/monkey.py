"""Activation: make the stdlib's ``socket``, ``select``, ``selectors`` and ``ssl`` multisock's.

Patching sets attributes *in place* on the stdlib modules, so every ``import
socket`` anywhere sees multisock. Originals are recorded first-write-wins (as
gevent does), so patching twice is harmless and :func:`unpatch_all` restores
exactly what was there — including removing attributes that did not exist.

Modules that copied a reference before activation (``from socket import
socket``) keep the kernel's object: :func:`patch_all` warns and names them. An
import hook fixes the stdlib modules known to capture such references at import
time (``socketserver._ServerSelector``) when they are imported afterwards.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

# the facade reads it (create_connection obeys a swapped socket.socket): it lives below us
from multisock.runtime import patched_modules as _patched_modules

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

_MISSING = object()
_saved: dict[str, dict[str, Any]] = {}
_ssl_on_import = False  # patch_all() ran before ssl was imported: patch it on import


class MultisockWarning(RuntimeWarning):
    """Activation happened after some module had taken a direct reference to a kernel object."""


def _patch(module_name: str, attr: str, value: Any) -> None:
    module = importlib.import_module(module_name)
    saved = _saved.setdefault(module_name, {})
    if attr not in saved:
        saved[attr] = getattr(module, attr, _MISSING)
    setattr(module, attr, value)


def _patch_class(module_name: str, class_name: str, attr: str, value: Any) -> None:
    """Set ``attr`` on a class of the module, in place; saved as ``"Class.attr"``.

    What is saved is the class's *own* entry (``_MISSING`` if the attribute was
    inherited), so that unpatching puts back exactly that."""
    cls = getattr(importlib.import_module(module_name), class_name)
    saved = _saved.setdefault(module_name, {})
    key = f"{class_name}.{attr}"
    if key not in saved:
        saved[key] = cls.__dict__.get(attr, _MISSING)
    setattr(cls, attr, value)


def _restore(module: ModuleType, attr: str, value: Any) -> None:
    target: Any = module
    if "." in attr:
        class_name, attr = attr.split(".", 1)
        target = getattr(module, class_name)
    if value is _MISSING:
        if attr in vars(target):
            delattr(target, attr)
    else:
        setattr(target, attr, value)


def get_original(module_name: str, attr: str) -> Any:
    """The object ``module.attr`` was before multisock patched it (``get_original("socket", "socket")``;
    ``get_original("ssl", "SSLContext.wrap_socket")`` for a patched class attribute)."""
    saved = _saved.get(module_name, {})
    if attr in saved:
        value = saved[attr]
        if value is not _MISSING:
            return value
        if "." not in attr:
            raise AttributeError(f"module {module_name!r} had no attribute {attr!r}")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def is_patched(module_name: str | None = None) -> bool:
    return bool(_patched_modules) if module_name is None else module_name in _patched_modules


def patch_socket() -> None:
    import multisock.socket as msock

    # ssl defines ``class SSLSocket(socket)`` with the name it imports from socket: it must
    # run while that is still the stdlib's class (a _socket.socket subclass), or every later
    # ssl.SSLSocket - kernel or userspace - is broken. It is not imported here (that loads
    # OpenSSL: ~4.5 MiB of RSS a program without TLS would pay): the import hook runs a
    # later ``import ssl`` with the stdlib's socket names in place (_stdlib_socket_names).
    _install_hook()
    for name in sorted(msock._OURS):
        if hasattr(msock, name):
            _patch("socket", name, getattr(msock, name))
    _patched_modules.add("socket")
    _rebind_known_captures()


def patch_select() -> None:
    from multisock import select as mselect

    for name in ("select", "poll", "epoll"):
        _patch("select", name, getattr(mselect, name))
    _patched_modules.add("select")


def patch_selectors() -> None:
    from multisock.selectors_shim import CLASSES

    for name, cls in CLASSES.items():
        _patch("selectors", name, cls)
    _patched_modules.add("selectors")
    _rebind_known_captures()


def patch_ssl() -> None:
    """TLS on userspace sockets: ``SSLContext.wrap_socket`` (and so ``ssl.wrap_socket``)
    given a multisock socket returns a ``multisock.tls.SSLSocket``; kernel sockets keep the
    stdlib's path. The method is replaced on the stdlib's class itself: ``ssl.SSLContext``
    stays the same object (see ``multisock.tls.patch`` for why). ``ssl.create_connection``
    (which ``get_server_certificate`` uses) becomes multisock's."""
    import ssl

    from multisock.api.functions import create_connection
    from multisock.tls.patch import make_wrap_socket

    if not getattr(ssl.SSLContext.wrap_socket, "multisock_hook", False):
        original = get_original("ssl", "SSLContext.wrap_socket")
        _patch_class("ssl", "SSLContext", "wrap_socket", make_wrap_socket(original))
    _patch("ssl", "create_connection", create_connection)
    _patched_modules.add("ssl")


def patch_all() -> None:
    """Patch socket, select, selectors and ssl, and gevent's socket APIs when gevent is in
    use (``multisock.green``); warn about stale references.

    ssl is patched now if it is imported already, else by the import hook the moment it is
    (so that a program that never uses TLS never loads OpenSSL)."""
    global _ssl_on_import
    originals = _kernel_objects()
    patch_socket()
    patch_select()
    patch_selectors()
    if "ssl" in sys.modules:
        patch_ssl()
    else:
        _ssl_on_import = True
    _install_hook()
    from multisock import green

    green.integrate()  # gevent's own socket APIs, now or when gevent patches later
    _warn_direct_references(originals)


def unpatch_all() -> None:
    """Restore every patched attribute exactly; remove the import hook."""
    for module_name, attrs in _saved.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for attr, value in attrs.items():
            _restore(module, attr, value)
    global _ssl_on_import
    _saved.clear()
    _patched_modules.clear()
    _ssl_on_import = False
    _remove_hook()
    from multisock import green

    green.disintegrate()


@contextmanager
def patched(host: Any = None) -> Iterator[None]:
    """Patch for the block (optionally with sockets on ``host``), then restore."""
    was = is_patched()
    patch_all()
    try:
        if host is not None:
            from multisock.runtime import use_host

            with use_host(host):
                yield
        else:
            yield
    finally:
        if not was:
            unpatch_all()


# ----------------------------------------------------------- stale references

def _kernel_objects() -> dict[int, str]:
    import select
    import socket

    out = {}
    for module, names in ((socket, ("socket", "create_connection", "getaddrinfo", "socketpair")),
                          (select, ("select", "poll", "epoll"))):
        for name in names:
            obj = get_original(module.__name__, name) if name in _saved.get(module.__name__, {}) \
                else getattr(module, name, None)
            if obj is not None:
                out[id(obj)] = f"{module.__name__}.{name}"
    return out


def _warn_direct_references(originals: dict[int, str]) -> None:
    offenders: list[str] = []
    for name, module in list(sys.modules.items()):
        # ssl subclasses the kernel socket by design; TLS over the stack is patch_ssl's job
        if module is None or name in ("socket", "select", "_socket", "ssl", "gevent.ssl") \
                or name.startswith("multisock"):
            continue
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for attr, value in items:
            what = originals.get(id(value))
            if what is not None and not attr.startswith("_"):
                offenders.append(f"{name}.{attr} ({what})")
    if offenders:
        warnings.warn(
            "multisock was activated after these modules took direct references to kernel "
            "objects, which stay kernel objects: " + ", ".join(sorted(offenders)[:20]),
            MultisockWarning,
            stacklevel=3,
        )


# ------------------------------------------------------------------ import hook

def _rebind_known_captures() -> None:
    """Attributes known stdlib modules copied at import time."""
    socketserver = sys.modules.get("socketserver")
    if socketserver is not None and "selectors" in _patched_modules:
        from multisock.selectors_shim import MultisockPollSelector

        # socketserver prefers PollSelector, like its own import-time choice on Linux
        _patch("socketserver", "_ServerSelector", MultisockPollSelector)
    unix_events = sys.modules.get("asyncio.unix_events")
    if unix_events is not None and "socket" in _patched_modules:
        # the selector loop's os.sendfile() path (see multisock.asyncio_sendfile)
        loop_cls = unix_events._UnixSelectorEventLoop
        if not getattr(loop_cls._sock_sendfile_native, "multisock_hook", False):
            from multisock.asyncio_sendfile import make_sock_sendfile_native

            original = get_original("asyncio.unix_events",
                                    "_UnixSelectorEventLoop._sock_sendfile_native")
            _patch_class("asyncio.unix_events", "_UnixSelectorEventLoop",
                         "_sock_sendfile_native", make_sock_sendfile_native(original))


@contextmanager
def _stdlib_socket_names() -> Iterator[None]:
    """The stdlib's own names in ``socket`` for the duration of the block (then ours again):
    for a module that subclasses ``socket.socket`` at import time (ssl). Another thread
    creating a socket during that import gets a kernel socket."""
    module = sys.modules.get("socket")
    originals = _saved.get("socket", {})
    if module is None or "socket" not in _patched_modules or not originals:
        yield
        return
    ours = {attr: getattr(module, attr, _MISSING) for attr in originals}
    for attr, value in originals.items():
        _restore(module, attr, value)
    try:
        yield
    finally:
        for attr, value in ours.items():
            _restore(module, attr, value)


def _after_import(fullname: str) -> None:
    if fullname == "ssl":
        if _ssl_on_import:
            patch_ssl()
    else:
        _rebind_known_captures()


class _Finder:
    """After a watched module is imported, fix what it captured; ssl is executed with the
    stdlib's socket names and patched afterwards (see patch_socket).

    A meta-path finder needs only ``find_spec``; it does not derive from
    ``importlib.abc.MetaPathFinder``, whose module (3.11) imports ``importlib.resources``
    and with it tempfile, shutil, bz2, lzma, pathlib: ~1.5-2 MiB of RSS at activation."""

    WATCHED = frozenset({"socketserver", "asyncio.unix_events", "ssl"})

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname not in self.WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                loader = spec.loader
                original_exec = loader.exec_module

                def exec_module(module: ModuleType, _exec: Any = original_exec,
                                _name: str = fullname) -> None:
                    if _name == "ssl":
                        with _stdlib_socket_names():
                            _exec(module)
                    else:
                        _exec(module)
                    _after_import(_name)

                loader.exec_module = exec_module  # type: ignore[method-assign]
                return spec
        return None


_finder = _Finder()


def _install_hook() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _remove_hook() -> None:
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
