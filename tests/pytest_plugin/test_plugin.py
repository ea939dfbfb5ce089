"""The pytest plugin (multisock.pytest_plugin) driven the way users drive it: inner pytest
runs in subprocesses (activation patches the process, it must not leak into this one)."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from multisock.pytest_plugin.settings import SettingError, Settings, derive_seed

pytest_plugins = ["pytester"]

# an inner test that sends 200 numbered datagrams over the host's (lossy) loopback and
# records which arrived, in which order: the packets' fates, seen from the receiver
UDP_FATES = '''
import json, socket, pathlib, pytest

def fates(name):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.5)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(200):
        tx.sendto(str(i).encode(), rx.getsockname())
    got = []
    try:
        while True:
            got.append(int(rx.recv(100)))
    except TimeoutError:
        pass
    rx.close()
    tx.close()
    from multisock.runtime import default_host
    counters = default_host().loopback_impairment.counters
    out = pathlib.Path("out")
    out.mkdir(exist_ok=True)
    # what arrived, as a multiset: the order of a reordered datagram (held back 1 ms while
    # the sender goes on) follows the clock, until virtual time
    (out / (name + ".json")).write_text(json.dumps([sorted(got), counters]))
'''


# hypothesis' plugin imports hypothesis at the end of every run (seconds of CPU): not ours
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A separate process: for runs that activate for the whole session."""
    return pytester.runpytest_subprocess(*QUIET, *args, timeout=120)


def run_here(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """In this process (faster): for runs where only markers and fixtures activate, which
    undo their patching at each test's end."""
    return pytester.runpytest_inprocess(*QUIET, *args)


def read_fates(pytester: pytest.Pytester, name: str) -> list[object]:
    return json.loads((pytester.path / "out" / f"{name}.json").read_text())


def pcap_packets(path: Path) -> list[bytes]:
    """Each record's length fields and bytes; the capture timestamps (wall clock) left out."""
    data = path.read_bytes()
    out, offset = [], 24
    while offset < len(data):
        _sec, _usec, caplen, length = struct.unpack_from("<IIII", data, offset)
        out.append(struct.pack("<II", caplen, length) + data[offset + 16:offset + 16 + caplen])
        offset += 16 + caplen
    return out


def session_seed(result: pytest.RunResult) -> int:
    match = re.search(r"multisock: session seed (\d+)", result.stdout.str())
    assert match, result.stdout.str()
    return int(match.group(1))


# ------------------------------------------------------------------- options

def test_installed_plugin_does_nothing_until_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import socket, sys
        def test_untouched():
            assert socket.socket.__module__ == "socket"
            # the package root loads multisock.net's __init__ (a slot, nothing else)
            assert not [m for m in sys.modules if m.startswith(("multisock.net.", "multisock.stack",
                                                               "multisock.socket", "multisock.api"))]
    ''')
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "multisock: session seed" not in result.stdout.str()


def test_options_are_listed_in_help(pytester: pytest.Pytester) -> None:
    result = run_here(pytester, "--help")
    text = result.stdout.str()
    for name in ("--multisock ", "--multisock-delay=TIME", "--multisock-jitter", "--multisock-loss",
                 "--multisock-reorder", "--multisock-duplicate", "--multisock-corrupt",
                 "--multisock-rate", "--multisock-mtu", "--multisock-seed=N",
                 "--multisock-seeds=K", "--multisock-pcap-dir", "--multisock-isolated"):
        assert name in text, name


@pytest.mark.parametrize(("option", "value", "message"), [
    ("delay", "10", "needs a time unit"),
    ("jitter", "2", "needs a time unit"),
    ("rate", "10", "needs a rate unit"),
    ("rate", "10parsecs", "unknown rate unit"),
    ("loss", "150%", "within 0..1"),
    ("corrupt", "a lot", "not a probability"),
    ("seeds", 0, ">= 1"),
    ("mtu", 20, "68..65535"),
])
def test_bad_option_values_are_refused(option: str, value: object, message: str) -> None:
    namespace = argparse.Namespace(**{f"multisock_{option}": value})
    with pytest.raises(SettingError, match=re.escape(message)):
        Settings.from_options(namespace)


def test_good_option_values_pass_as_given() -> None:
    settings = Settings.from_options(argparse.Namespace(
        multisock=True, multisock_delay="10ms", multisock_loss="1%", multisock_rate="10mbit",
        multisock_corrupt="0.005", multisock_seed=3))
    assert settings.impairments == {"delay": "10ms", "loss": "1%", "corrupt": "0.005",
                                    "rate": "10mbit"}
    assert settings.command_line(3) == ["--multisock", "--multisock-delay", "10ms",
                                        "--multisock-loss", "1%", "--multisock-corrupt",
                                        "0.005", "--multisock-rate", "10mbit",
                                        "--multisock-seed", "3"]


def test_a_bad_option_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = run_here(pytester, "--multisock", "--multisock-delay", "10")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--multisock-delay: '10' needs a time unit" in result.stderr.str()


def test_seeds_derive_stably() -> None:
    # BLAKE2 of "seed:nodeid": the same in every process and Python version
    assert derive_seed(1, "t.py::test") == derive_seed(1, "t.py::test")
    assert derive_seed(1, "t.py::test") != derive_seed(2, "t.py::test")
    assert derive_seed(1, "t.py::test") != derive_seed(1, "t.py::test2")
    assert 0 <= derive_seed(123, "x") < 2**32


def test_whole_suite_is_userspace_before_test_modules_are_imported(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest('''
        import socket
        CONFTEST_SOCKET = socket.socket
    ''')
    pytester.makepyfile('''
        import socket, conftest
        AT_IMPORT = socket.socket
        def test_userspace(mshost):
            assert AT_IMPORT.__module__ == "multisock.socket"
            assert conftest.CONFTEST_SOCKET.__module__ == "multisock.socket"
        def test_impaired_process_host():
            from multisock.runtime import default_host
            host = default_host()
            assert host.loopback_impairment.delay == 0.002
            assert host.loopback_impairment.loss == 0.01
            assert host.loopback.mtu == 9000
    ''')
    result = run(pytester, "--multisock", "--multisock-delay", "2ms", "--multisock-loss", "1%",
                 "--multisock-mtu", "9000", "--multisock-isolated")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["multisock: session seed * every test on the userspace stack*"])


# -------------------------------------------------------------- marker, fixtures

def test_marker_gives_one_test_a_fresh_impaired_host(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import socket, pytest

        @pytest.mark.multisock(delay="20ms", loss=0.02, mtu=1500, seed=7)
        def test_marked(mshost, multisock_seed):
            assert socket.socket.__module__ == "multisock.socket"
            assert mshost.loopback_impairment.delay == 0.02
            assert mshost.loopback_impairment.loss == 0.02
            assert mshost.loopback.mtu == 1500
            assert mshost.net.seed == multisock_seed == 7
            with socket.socket() as s:
                assert s._sock.host is mshost

        def test_unmarked_is_the_kernel():
            assert socket.socket.__module__ == "socket"

        @pytest.mark.multisock(delay="20ms")
        def test_marker_without_fixture():
            from multisock.runtime import default_host
            assert socket.socket.__module__ == "multisock.socket"
            assert default_host().loopback_impairment.delay == 0.02
    ''')
    run_here(pytester, "-p", "no:randomly").assert_outcomes(passed=3)


def test_marker_refuses_what_it_cannot_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import pytest
        @pytest.mark.multisock(virtual_time="yes")
        def test_virtual_time():
            pass
        @pytest.mark.multisock(delay="10")
        def test_bare_number():
            pass
        @pytest.mark.multisock(latency="10ms")
        def test_unknown():
            pass
    ''')
    result = run_here(pytester, "-p", "no:randomly")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines([
        "*UsageError: @pytest.mark.multisock(virtual_time=...): 'yes' is not True/False*",
    ])
    result.stdout.fnmatch_lines(["*UsageError: @pytest.mark.multisock(delay=...): '10' needs a time unit*"])
    result.stdout.fnmatch_lines(["*UsageError: @pytest.mark.multisock: unknown keyword(s) latency*"])


def test_msnet_is_a_fresh_seeded_network_closed_after(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import multisock
        SEEN = []
        def test_one(msnet, multisock_seed):
            assert isinstance(msnet, multisock.Network)
            assert msnet.seed == multisock_seed
            a = msnet.add_host("a", "10.0.0.1/24")
            b = msnet.add_host("b", "10.0.0.2/24")
            msnet.link(a, b, delay="1ms")
            assert a.ping("10.0.0.2") > 0
            SEEN.append(msnet)
        def test_closed_after():
            assert SEEN[0].driver.closed
    ''')
    run_here(pytester, "-p", "no:randomly").assert_outcomes(passed=2)


def test_sockets_left_open_are_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import socket
        KEEP = []
        def test_leaks(mshost):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 5555))
            KEEP.append(s)
        def test_tidy(mshost):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 5556))
    ''')
    result = run_here(pytester)
    result.assert_outcomes(passed=2)
    text = result.stdout.str()
    assert re.search(r"UnclosedSocketWarning: \S+::test_leaks left a socket open: "
                     r"<multisock socket family=AF_INET, type=SOCK_DGRAM, "
                     r"laddr=\('127.0.0.1', 5555\)>", text), text
    assert "5556" not in text


def test_leak_report_in_whole_suite_mode_spares_servers_from_before_the_test(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import socket, threading, pytest

        @pytest.fixture(scope="session")
        def server():
            srv = socket.create_server(("127.0.0.1", 0))
            held = []
            def serve():
                while True:
                    conn, _ = srv.accept()
                    held.append(conn)   # the server keeps its side open
            threading.Thread(target=serve, daemon=True).start()
            return srv.getsockname()

        def test_client_closes(server):
            with socket.create_connection(server):
                pass

        def test_client_leaks(server):
            test_client_leaks.s = socket.create_connection(server)
    ''')
    result = run(pytester, "--multisock", "-p", "no:randomly", "-W",
                 "error::pytest.PytestUnraisableExceptionWarning")
    result.assert_outcomes(passed=2)
    leaks = [line for line in result.stdout.lines if "left a socket open" in line]
    assert len(leaks) == 1 and "test_client_leaks" in leaks[0] and "raddr" in leaks[0], leaks


def test_driver_callback_errors_fail_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        def boom():
            raise ZeroDivisionError("in a driver callback")
        def test_body_passes(mshost):
            with mshost.driver.operation():
                mshost.driver.call_soon(boom)
    ''')
    result = run_here(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*driver recorded 1 callback error*",
                                 "*ZeroDivisionError: in a driver callback*"])


# ----------------------------------------------------------- failure section

def test_failure_section_reruns_the_test_alone_with_the_same_fates(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(UDP_FATES + '''
def test_other():
    fates("other")

def test_fails():
    fates("fails")
    with socket.create_server(("127.0.0.1", 0)) as srv:
        c = socket.create_connection(srv.getsockname())
        c.sendall(b"x" * 1000)
        c.close()
        assert False, "on purpose"
''')
    pcaps = pytester.path / "pcaps"
    result = run(pytester, "--multisock", "--multisock-loss", "20%", "--multisock-reorder", "5%",
                 "--multisock-pcap-dir", str(pcaps), "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    seed = session_seed(result)
    result.stdout.fnmatch_lines([
        "*- multisock -*",
        f"seed: * (derived from the session seed and node id; session seed {seed})",
        "reproduce: *",
        "loopback: loss=20% reorder=5%",
        "loopback fates: offered=* lost=*",
        f"pcap: {pcaps}/test_failure_section_reruns_the_test_alone_with_the_same_fates.py_"
        "test_fails.pcap",
        "multisock: * TCP connection(s) on multisock",
        "  ip: {*",
    ])
    assert "x" * 1000 not in text
    first = read_fates(pytester, "fails")
    (pcap,) = pcaps.glob("*test_fails.pcap")
    first_pcap = pcap_packets(pcap)
    assert 100 < len(first[0]) < 200 and first[1]["lost"] > 0  # 20 % loss
    # the command the section gives, run as given: only that test, the same fates
    command = re.search(r"^reproduce: (.*)$", text, re.M)
    assert command is not None
    words = shlex.split(command.group(1))
    assert words[:3] == [sys.executable, "-m", "pytest"] and "--multisock-seed" in words
    assert words[3].endswith("::test_fails")
    (pytester.path / "out" / "fails.json").unlink()
    (pytester.path / "out" / "other.json").unlink()
    again = subprocess.run(words, cwd=pytester.path, capture_output=True, text=True, timeout=120)
    assert "1 failed" in again.stdout and "passed" not in again.stdout
    assert not (pytester.path / "out" / "other.json").exists()
    assert read_fates(pytester, "fails") == first
    # the datagrams' packets, byte for byte (TCP's are not: its ISNs and timestamps follow
    # the clock, until virtual time)
    assert pcap_packets(pcap)[:200] == first_pcap[:200]


def test_same_seed_same_fates_and_pcap_other_seed_other_fates(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(UDP_FATES + '''
@pytest.mark.multisock(loss="30%", duplicate="5%", reorder="5%")
def test_fates(mshost):
    fates("fates")
''')
    runs = []
    for seed in ("11", "11", "12"):
        pcaps = pytester.path / f"pcaps{len(runs)}"
        run_here(pytester, "--multisock-seed", seed, "--multisock-pcap-dir",
            str(pcaps)).assert_outcomes(passed=1)
        runs.append((read_fates(pytester, "fates"), pcap_packets(next(pcaps.iterdir()))))
    (fates_a, pcap_a), (fates_b, pcap_b), (fates_c, _) = runs
    assert fates_a == fates_b and pcap_a == pcap_b
    assert len(pcap_a) >= 200
    assert fates_a != fates_c
    assert fates_a[1]["duplicated"] and fates_a[1]["reordered"] and fates_a[1]["lost"]


# ---------------------------------------------------------------- seed sweeps

def test_seed_sweep_runs_each_test_under_k_named_seeds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
        import pytest

        @pytest.mark.multisock(loss="1%")
        def test_swept(multisock_seed, mshost):
            assert mshost.net.seed == multisock_seed
            assert multisock_seed % 2 == 0, multisock_seed

        def test_not_concerned():
            pass
    ''')
    result = run_here(pytester, "--multisock-seeds", "6", "--multisock-seed", "5", "-v")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] + outcomes["failed"] == 7
    ids = re.findall(r"test_swept\[seed=(\d+)\] (PASSED|FAILED)", result.stdout.str())
    assert len(ids) == 6 and len({seed for seed, _ in ids}) == 6
    for seed, outcome in ids:  # the failures name the seed
        assert (outcome == "PASSED") == (int(seed) % 2 == 0)
    again = run_here(pytester, "--multisock-seeds", "6", "--multisock-seed", "5", "-v")
    assert re.findall(r"test_swept\[seed=(\d+)\] (PASSED|FAILED)", again.stdout.str()) == ids


# ---------------------------------------------------------------------- xdist

def test_xdist_workers_share_the_session_seed(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(UDP_FATES + '''
import os
@pytest.mark.parametrize("n", range(6))
def test_many(n, multisock_seed, request):
    assert socket.socket.__module__ == "multisock.socket"
    fates(f"many{n}")
    pathlib.Path("out", f"seed{n}").write_text(
        f"{multisock_seed} {request.node.nodeid} {os.environ.get('PYTEST_XDIST_WORKER')}")
''')
    result = run(pytester, "-n", "2", "--multisock", "--multisock-loss", "25%")
    result.assert_outcomes(passed=6)
    seed = session_seed(result)
    workers = set()
    distributed = {}
    for n in range(6):
        test_seed, nodeid, worker = (pytester.path / "out" / f"seed{n}").read_text().split()
        assert int(test_seed) == derive_seed(seed, nodeid)
        workers.add(worker)
        distributed[n] = read_fates(pytester, f"many{n}")
    assert len(workers) == 2  # both workers ran tests
    # the same session seed without xdist: each test's fates are the same
    run(pytester, "--multisock", "--multisock-loss", "25%", "--multisock-seed",
        str(seed)).assert_outcomes(passed=6)
    assert {n: read_fates(pytester, f"many{n}") for n in range(6)} == distributed


def test_failure_section_shows_the_gateways_flows(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
import socket
from multisock.monkey import get_original

def test_reaches_a_kernel_server_then_fails():
    kernel = get_original("socket", "socket")(socket.AF_INET, socket.SOCK_STREAM)
    kernel.bind(("127.0.0.1", 0))
    kernel.listen()
    with socket.create_connection(kernel.getsockname(), timeout=10) as c:
        conn, _ = kernel.accept()
        c.sendall(b"hello")
        assert conn.recv(5) == b"hello"
        conn.close()
    kernel.close()
    assert False, "on purpose"
''')
    result = run(pytester, "--multisock", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    # the flow left through the gateway's loopback relay: its counters and row are shown
    result.stdout.fnmatch_lines(["*- multisock -*", "*gateway *: 1 flow(s)", "*kernel=127.0.0.1:*"])


def test_a_blanket_error_filter_does_not_fail_a_test_for_a_leak(pytester: pytest.Pytester) -> None:
    """A project with ``filterwarnings = error`` (urllib3, requests...) passes under the plugin
    as on the kernel, which reports nothing for a socket left open and still referenced; the
    leak is still shown. A filter naming the warning decides: there it fails the test."""
    pytester.makepyfile('''
        import socket
        KEEP = []
        def test_leaks(mshost):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 5557))
            KEEP.append(s)
    ''')
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    # a fresh process: in this one, trio imported by other tests makes activation warn,
    # which 'error' turns into an error of its own
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "test_leaks left a socket open" in result.stdout.str()
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n"
                     "    error::multisock.pytest_plugin.UnclosedSocketWarning\n")
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)


def test_whole_suite_mode_survives_pytest_socket_restoring_its_originals(
        pytester: pytest.Pytester) -> None:
    """pytest-socket keeps ``socket.socket`` & co. as it found them at its import and puts
    them back after every test. Installed beside us, whole-suite mode used to run every test
    after the first on the kernel. A stand-in with pytest-socket's own mechanism (the names
    it keeps, the teardown that restores them), loaded before activation as the real one is."""
    pytester.makepyfile(pytest_socket='''
        import socket
        _true_socket = socket.socket
        _true_connect = socket.socket.connect
        _true_getaddrinfo = socket.getaddrinfo
        _true_gethostbyname = socket.gethostbyname
        def pytest_runtest_teardown():
            socket.socket = _true_socket
            socket.socket.connect = _true_connect
            socket.getaddrinfo = _true_getaddrinfo
            socket.gethostbyname = _true_gethostbyname
    ''')
    pytester.makepyfile(test_after_first='''
        import socket
        def _ours():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                return type(s).__module__.startswith("multisock")
        def test_first():
            assert _ours()
        def test_second():
            assert _ours()
        def test_third():
            assert _ours() and socket.getaddrinfo.__module__.startswith("multisock")
    ''')
    result = run(pytester, "--multisock", "-p", "pytest_socket", "-p", "no:randomly")
    result.assert_outcomes(passed=3)
