"""The compiled build's shape (setup.py): what mypyc compiles, and the class contracts that
compiling must not break. Runs on both builds; the first test only means something on the
compiled one (CI runs the suite on it from a copy of the checkout, .ci/suite-outside-checkout).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import weakref
from pathlib import Path

import pytest

import multisock
from multisock.net.network import Network

SETUP = Path(__file__).resolve().parent.parent / "setup.py"


def _setup_list(name: str) -> list[str]:
    """A list of paths assigned at the top level of setup.py (read, not run: running it
    would build)."""
    for node in ast.parse(SETUP.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return value
    raise AssertionError(f"setup.py has no {name}")


@pytest.mark.skipif(not multisock.COMPILED, reason="the pure build compiles nothing")
def test_hot_modules_above_the_boundary_are_extensions() -> None:
    hot = _setup_list("HOT_ABOVE")
    assert "multisock/net/driver.py" in hot and "multisock/api/stream.py" in hot
    for path in hot:
        # found, not imported: gevent_driver imports gevent, which tests/gevent shadows here
        spec = importlib.util.find_spec(path[:-3].replace("/", "."))
        assert spec is not None and str(spec.origin).endswith(".so"), (path, spec)


@pytest.mark.skipif(not multisock.COMPILED, reason="the pure build compiles nothing")
def test_modules_of_the_separate_groups_are_extensions() -> None:
    """setup.py's ``GROUPS`` (modules off the footprint row's path, in shared libraries of
    their own) are compiled like the rest, each loading its group's library on import."""
    for node in ast.parse(SETUP.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "GROUPS":
            assert node.value is not None
            groups: dict[str, list[str]] = ast.literal_eval(node.value)
            break
    else:
        raise AssertionError("setup.py has no GROUPS")
    assert "multisock/wire/ethernet.py" in groups["multisock_cold"]
    for name, paths in groups.items():
        assert importlib.util.find_spec(f"{name}__mypyc") is not None, name
        for path in paths:
            spec = importlib.util.find_spec(path[:-3].replace("/", "."))
            assert spec is not None and str(spec.origin).endswith(".so"), (path, spec)


def test_setblocking_takes_any_truth_value() -> None:
    """CPython's setblocking takes an int (gevent passes 0 and 1); compiled code checks
    argument types, so the core's parameter is not annotated bool."""
    net = Network()
    try:
        sock = net.add_host("a", "10.0.0.1/24").socket()
        sock.setblocking(0)
        assert sock.gettimeout() == 0.0
        sock.setblocking(1)
        assert sock.gettimeout() is None
        sock.close()
    finally:
        net.close()


def test_live_drivers_are_tracked_without_weak_references_to_them() -> None:
    """Driver is a native class in the compiled build (no ``__weakref__``): net.backends keeps
    each live driver through a weakly held registration object instead, which must still see
    a driver until it is closed or garbage, and GeventDriver/VirtualDriver keep their own
    backend names (attribute defaults of native subclasses)."""
    import gc

    from multisock.net import backends

    plain = backends.make_driver()
    virtual = backends.make_driver(backend="virtual")
    try:
        assert plain.backend == "threads"
        assert virtual.backend == "virtual"
        live = backends.live_drivers()
        assert any(d is plain for d in live) and any(d is virtual for d in live)
        if multisock.COMPILED:
            with pytest.raises(TypeError):
                weakref.ref(plain)
    finally:
        plain.close()
    assert not any(d is plain for d in backends.live_drivers())  # closed: not live
    ident = id(virtual)
    del virtual, live
    gc.collect()
    assert not any(id(d) == ident for d in backends.live_drivers())  # garbage: gone


@pytest.mark.skipif(not multisock.COMPILED, reason="the pure build compiles nothing")
def test_socket_cores_are_native_classes() -> None:
    """The cores are mypyc native classes (fields in a struct, no ``__dict__``): what kept
    them non-native (forking's ``__class__`` swap) is gone."""
    net = Network()
    try:
        host = net.add_host("a", "10.0.0.1/24")
        for sock in (host.socket(), host.socket(type=2)):
            core = sock._sock
            assert not hasattr(core, "__dict__")
            assert "_fd" in type(core).__mypyc_attrs__
            sock.close()
    finally:
        net.close()


def _closure_over(value: object) -> object:
    return lambda: value


def test_fork_child_stand_in_replaces_every_python_reference_to_a_core() -> None:
    """What a forked child does to an inherited core (``api.forking._after_in_child``),
    without forking: the core cannot become a RemoteCore in place (native in the compiled
    build), so the socket object's ``_sock``, ``cores_by_fd`` and any dict, list, set, closure
    cell or tuple (rebuilt where it is held) holding the core are pointed at a RemoteCore
    carrying its state."""
    from multisock.api import forking
    from multisock.api.core import cores_by_fd

    net = Network()
    try:
        host = net.add_host("a", "10.0.0.1/24")
        sock = host.socket()
        core = sock._sock
        fd = sock.fileno()
        in_dict, in_list, in_set, as_key = {"core": core}, [core], {core}, {core: 1}
        in_tuples = {"poll": (core, 1), "nested": [((core, 2), 3)]}  # (a poll object's entry)
        cell = _closure_over(core).__closure__[0]  # type: ignore[index]
        remote = forking._as_remote(core)
        forking._redirect([core], {id(core): remote})
        try:
            assert isinstance(remote, forking.RemoteCore)
            assert remote._remote_id == id(core)
            assert remote.refs == core.refs - 1
            assert remote._fd is core._fd and remote.fileno() == fd
            assert sock._sock is remote and cores_by_fd[fd] is remote
            assert in_dict["core"] is remote and in_list[0] is remote
            assert in_set == {remote} and as_key == {remote: 1}
            assert in_tuples["poll"] == (remote, 1)
            assert in_tuples["nested"] == [((remote, 2), 3)]
            assert cell.cell_contents is remote
        finally:
            forking._redirect([remote], {id(remote): core})  # type: ignore[dict-item]
        assert sock._sock is core and cores_by_fd[fd] is core
        assert in_tuples["poll"][0] is core and in_set == {core}
        sock.close()
    finally:
        net.close()
