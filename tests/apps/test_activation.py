"""monkey patching, select/selectors shims, the launcher and the shims."""

from __future__ import annotations

import os
import select
import selectors
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import multisock
from multisock import monkey
from multisock.runtime import use_host

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=3)
    h = net.add_host("h", "10.0.0.1/24")
    yield h
    net.close()


def test_patch_and_unpatch_restore_identity() -> None:
    before = {name: getattr(socket, name) for name in dir(socket)}
    sel_before = (select.select, select.poll, selectors.DefaultSelector)
    monkey.patch_all()
    monkey.patch_all()  # idempotent
    try:
        assert monkey.is_patched()
        assert socket.socket is multisock.socket.socket
        assert monkey.get_original("socket", "socket") is before["socket"]
        assert select.select is not sel_before[0]
    finally:
        monkey.unpatch_all()
    after = {name: getattr(socket, name) for name in dir(socket)}
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
    assert (select.select, select.poll, selectors.DefaultSelector) == sel_before
    assert not monkey.is_patched()


def test_warns_about_modules_holding_kernel_references() -> None:
    import types

    victim = types.ModuleType("victim_module")
    victim.socket = socket.socket  # type: ignore[attr-defined]
    sys.modules["victim_module"] = victim
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            monkey.patch_all()
        assert any("victim_module.socket" in str(w.message) for w in caught)
    finally:
        monkey.unpatch_all()
        del sys.modules["victim_module"]


def test_patched_context_puts_sockets_on_the_host(host: multisock.Host) -> None:
    with monkey.patched(host):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert s._is_userspace  # type: ignore[attr-defined]
        s.close()
    assert not monkey.is_patched()


def test_select_poll_epoll_selectors_mixed(host: multisock.Host) -> None:
    from multisock import select as mselect
    from multisock.selectors_shim import MultisockSelector

    with use_host(host):
        rx = multisock.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 7000))
        tx = multisock.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        pipe_r, pipe_w = os.pipe()
        try:
            assert mselect.select([rx, pipe_r], [], [], 0.05) == ([], [], [])
            r, w, _ = mselect.select([rx, pipe_r], [tx], [], 1)
            assert r == [] and w == [tx]
            tx.sendto(b"x", ("127.0.0.1", 7000))
            os.write(pipe_w, b"y")
            r, _, _ = mselect.select([rx, pipe_r], [], [], 1)
            assert set(map(id, r)) == {id(rx), id(pipe_r)}
            p = mselect.poll()
            p.register(rx, mselect.POLLIN)
            p.register(pipe_r, mselect.POLLIN)
            assert dict(p.poll(100)) == {rx.fileno(): mselect.POLLIN, pipe_r: mselect.POLLIN}
            e = mselect.epoll()
            e.register(rx.fileno(), mselect.EPOLLIN)
            assert e.poll(0.1) == [(rx.fileno(), mselect.EPOLLIN)]
            rx.recv(10)
            assert e.poll(0.05) == []
            sel = MultisockSelector()
            sel.register(rx, selectors.EVENT_READ, "rx")
            sel.register(tx, selectors.EVENT_WRITE, "tx")
            assert [(k.data, ev) for k, ev in sel.select(0.5)] == [("tx", selectors.EVENT_WRITE)]
            # unpatched select sees readability through fileno() (an eventfd)
            tx.sendto(b"z", ("127.0.0.1", 7000))
            assert select.select([rx.fileno()], [], [], 1)[0] == [rx.fileno()]
        finally:
            os.close(pipe_r)
            os.close(pipe_w)
            rx.close()
            tx.close()


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          env=full_env, cwd=ROOT)


APP = textwrap.dedent('''
    import http.server, socket, sys, threading, urllib.request
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/pyproject.toml", timeout=10).read()
    kernel = __import__("multisock.monkey").monkey.get_original("socket", "socket")()
    kernel.settimeout(1)
    reached = kernel.connect_ex(("127.0.0.1", port)) == 0
    print(__name__, sys.argv[1:], socket.socket.__module__, len(body) > 100, "kernel-reached" if reached else "kernel-refused")
    srv.shutdown()
    sys.exit(7)
''')


def test_launcher_runs_a_script_with_argv_and_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    result = run(["-m", "multisock", "run", "--delay", "1ms", "--loss", "1%", "--seed", "4",
                  str(script), "one", "two"])
    assert result.returncode == 7, result.stderr
    assert result.stdout.split() == ["__main__", "['one',", "'two']", "multisock.socket", "True",
                                     "kernel-refused"]


def test_launcher_runs_a_module(tmp_path: Path) -> None:
    (tmp_path / "launched_mod.py").write_text(APP)
    result = run(["-m", "multisock", "run", "-m", "launched_mod", "x"],
                 env={"PYTHONPATH": f"{ROOT}:{tmp_path}"})
    assert result.returncode == 7, result.stderr
    assert result.stdout.startswith("__main__ ['x'] multisock.socket True kernel-refused")


def test_launcher_missing_script_and_stats(tmp_path: Path) -> None:
    result = run(["-m", "multisock", "run", str(tmp_path / "absent.py")])
    assert result.returncode == 2 and "can't open file" in result.stderr
    script = tmp_path / "app.py"
    script.write_text(APP)
    result = run(["-m", "multisock", "run", "--stats", str(script)])
    assert "TCP connection(s)" in result.stderr and "rtt=" in result.stderr


def test_shims_activate_and_are_inherited(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    parent = tmp_path / "parent.py"
    parent.write_text(f"import subprocess, sys\nsys.exit(subprocess.call([sys.executable, {str(script)!r}, 'child']))\n")
    result = run([str(parent)], env={"PYTHONPATH": f"{ROOT / 'shims'}:{ROOT}", "MULTISOCK": "1",
                                     "MULTISOCK_DELAY": "1ms"})
    assert result.returncode == 7, result.stderr
    assert "multisock.socket True kernel-refused" in result.stdout


def test_forked_child_fails_at_once_on_a_new_socket(host: multisock.Host) -> None:
    # inherited sockets work in the child (tests/api/test_fork.py); a new one cannot, since
    # the network runs in the parent: it must fail fast with the explanation, never hang
    pid = os.fork()
    if pid == 0:
        try:
            sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 5))
        except OSError as exc:
            os._exit(0 if "does not survive fork" in str(exc) else 2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
