"""Activation fails closed: a bad setting stops the program before its code runs.

Issue 15 items 13, 14 and 15: ``MULTISOCK_LOSS=abc`` used to print "Error in
sitecustomize" and run the program on kernel sockets; ``run --loss abc`` gave a traceback;
``--delay 20`` meant 20 seconds; every shimmed child of a TUN-attached process tried to
create the same device and fell back to the kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import multisock
from multisock.net.units import parse_duration, parse_rate
from multisock.options import OptionError, enabled, from_env

ROOT = Path(__file__).resolve().parents[2]
MARK = "USER-CODE-RAN"
PROBE = ("import socket, sys\n"
         "from multisock.runtime import default_host\n"
         f"print({MARK!r}, socket.socket.__module__)\n")


def python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
    full = {**clean, "PYTHONPATH": f"{ROOT / 'shims'}:{ROOT}", **env}
    return subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True,
                          timeout=120, env=full, cwd=ROOT)


def launcher(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
    return subprocess.run([sys.executable, "-m", "multisock", "run", *args], capture_output=True,
                          text=True, timeout=120, env={**clean, "PYTHONPATH": str(ROOT)}, cwd=ROOT)


# --------------------------------------------------------------- the shims (item 13)

@pytest.mark.parametrize(("env", "named"), [
    ({"MULTISOCK_LOSS": "abc"}, "MULTISOCK_LOSS"),
    ({"MULTISOCK_DELAY": "20"}, "MULTISOCK_DELAY"),            # a bare number (item 15)
    ({"MULTISOCK_DELAI": "20ms"}, "MULTISOCK_DELAI"),          # a misspelt name
    ({"MULTISOCK_PCAP": "/nonexistent-dir/x.pcap"}, "pcap"),   # fails while building the host
], ids=["bad-value", "bare-number", "unknown-name", "unwritable-pcap"])
def test_shims_stop_the_program_on_a_bad_setting(env: dict[str, str], named: str) -> None:
    result = python(PROBE, {"MULTISOCK": "1", **env})
    assert result.returncode == 2, result.stdout + result.stderr
    assert MARK not in result.stdout  # the program's code never ran, on any sockets
    assert named in result.stderr
    assert "Traceback" not in result.stderr and "Error in sitecustomize" not in result.stderr


def test_multisock_switch_itself_is_checked() -> None:
    result = python(PROBE, {"MULTISOCK": "yes"})
    assert result.returncode == 2 and MARK not in result.stdout
    assert "MULTISOCK='yes'" in result.stderr
    off = python(PROBE, {"MULTISOCK": "0", "MULTISOCK_LOSS": "abc"})
    assert off.returncode == 0 and f"{MARK} socket" in off.stdout  # off: nothing is read


def test_shims_activate_once_with_good_settings() -> None:
    code = PROBE + ("from multisock.net.backends import live_drivers\n"
                    "h = default_host()\n"
                    "print(len(live_drivers()), h.loopback_impairment.delay, h.loopback_impairment.rate)\n")
    result = python(code, {"MULTISOCK": "1", "MULTISOCK_DELAY": "5ms", "MULTISOCK_RATE": "10mbit"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [MARK, "multisock.socket", "1", "0.005", "10000000"]


BAD = {
    "MULTISOCK_DELAY": ["20", "abc", "-1ms", "5 parsecs"],
    "MULTISOCK_JITTER": ["2", "x"],
    "MULTISOCK_LOSS": ["abc", "150%", "-1"],
    "MULTISOCK_REORDER": ["1%%"],
    "MULTISOCK_DUPLICATE": ["2"],
    "MULTISOCK_CORRUPT": ["x%"],
    "MULTISOCK_RATE": ["10", "10furlongs", "0mbit"],
    "MULTISOCK_MTU": ["abc", "10", "1e3"],
    "MULTISOCK_SEED": ["x", "1.5"],
    "MULTISOCK_STATS": ["yes", "2"],
    "MULTISOCK_GEVENT": ["true"],
    "MULTISOCK_DNS": ["not-an-ip", "10.0.0.1:0", "10.0.0.1:x"],
    "MULTISOCK_HOSTNAME": [" padded"],
    "MULTISOCK_PCAP": [" "],
    "MULTISOCK_HOSTS": [" "],
    "MULTISOCK_BACKEND": ["fibers"],
    "MULTISOCK_TUN_OWNER": ["me", "0"],
    "MULTISOCK_NOPE": ["1"],
}


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in BAD.items() for v in vs])
def test_every_variable_is_checked(name: str, value: str) -> None:
    with pytest.raises(OptionError) as caught:
        from_env({"MULTISOCK": "1", name: value})
    assert name in str(caught.value)


def test_tun_settings_go_together() -> None:
    tun = {"MULTISOCK_TUN": "msk9", "MULTISOCK_ADDR": "10.77.0.2/24", "MULTISOCK_PEER": "10.77.0.1"}
    assert from_env(tun)["addr"] == ["10.77.0.2/24"]
    for missing in ("MULTISOCK_ADDR", "MULTISOCK_PEER"):
        with pytest.raises(OptionError, match=missing):
            from_env({k: v for k, v in tun.items() if k != missing})
    for bad in ({"MULTISOCK_TUN": "a/b"}, {"MULTISOCK_ADDR": "10.77.0.2"},
                {"MULTISOCK_PEER": "10.77.0.1/24"}):
        with pytest.raises(OptionError):
            from_env({**tun, **bad})
    with pytest.raises(OptionError, match="MULTISOCK_ADDR/MULTISOCK_PEER: go with MULTISOCK_TUN"):
        from_env({"MULTISOCK_ADDR": "10.77.0.2/24"})


def test_switch_and_good_values() -> None:
    assert not enabled({}) and not enabled({"MULTISOCK": "0"}) and enabled({"MULTISOCK": "1"})
    with pytest.raises(OptionError):
        enabled({"MULTISOCK": "true"})
    got = from_env({"MULTISOCK_DELAY": "10ms", "MULTISOCK_LOSS": "1%", "MULTISOCK_SEED": "4",
                    "MULTISOCK_STATS": "1", "MULTISOCK_DNS": "10.0.0.53:5353",
                    "MULTISOCK_FULL_TRANSFERS": "1"})  # a test-suite knob, not refused
    assert got == {"delay": pytest.approx(0.01), "loss": pytest.approx(0.01), "seed": 4,
                   "stats": True, "dns": "10.0.0.53:5353"}


# --------------------------------------------------------------- the launcher (items 13, 15)

@pytest.mark.parametrize(("args", "expected"), [
    (["--loss", "abc"], "multisock run: error: argument --loss: not a probability: 'abc'"),
    (["--delay", "20"], "multisock run: error: argument --delay: a time needs a unit: '20'"),
    (["--rate", "10"], "multisock run: error: argument --rate: a rate needs a unit: '10'"),
    (["--mtu", "x"], "multisock run: error: argument --mtu: not an integer"),
    (["--addr", "10.77.0.2/24"], "multisock run: error: --addr/--peer: go with --tun"),
    (["--tun", "msk9", "--addr", "10.77.0.2/24"], "multisock run: error: --tun: needs --peer"),
])
def test_launcher_gives_a_usage_error(args: list[str], expected: str) -> None:
    result = launcher(*args, "/dev/null")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(expected), result.stderr


def test_launcher_bare_number_error_names_the_units() -> None:
    message = launcher("--delay", "20", "/dev/null").stderr.splitlines()[-1]
    assert all(unit in message for unit in ("ns", "us", "ms", "s")) and "20ms" in message


def test_launcher_help_states_the_units() -> None:
    result = launcher("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--delay TIME one-way delay; a unit is required: ns, us, ms or s, e.g. 20ms" in text
    assert "--rate RATE bandwidth; a unit is required" in text and "10mbit" in text
    assert "A bare number such as --delay 20 is refused" in text
    assert "Probabilities are 1% or 0.01" in text and "%%" not in text


def test_launcher_refuses_an_unwritable_pcap(tmp_path: Path) -> None:
    result = launcher("--pcap", str(tmp_path / "missing-dir" / "x.pcap"), "/dev/null")
    assert result.returncode == 1
    assert result.stderr.startswith("multisock run: cannot write the pcap file")


# --------------------------------------------------------------- units (item 15)

def test_strings_need_a_unit_numbers_keep_their_meaning() -> None:
    for text in ("20", "0.5", " 7 "):
        with pytest.raises(ValueError, match="needs a unit"):
            parse_duration(text)
        with pytest.raises(ValueError, match="needs a unit"):
            parse_rate(text)
    assert parse_duration(20) == 20.0 and parse_duration(0.005) == 0.005
    assert parse_rate(1_000_000) == 1_000_000
    assert parse_duration("20ms") == pytest.approx(0.02) and parse_rate("1kbit") == 1000
    net = multisock.Network(seed=1)
    try:
        a, b = net.add_host("a", "10.0.0.1/24"), net.add_host("b", "10.0.0.2/24")
        link = net.link(a, b, delay=0.005, rate=10_000_000)  # the documented numeric API
        assert link.a_to_b.impairment.delay == 0.005
        with pytest.raises(ValueError, match="needs a unit"):
            link.set(delay="5")
    finally:
        net.close()


# --------------------------------------------------------------- TUN children (item 14)

def test_child_of_a_tun_owner_gets_its_own_network_with_the_impairments() -> None:
    # "lo" stands for a device the parent holds: it exists, and the owner is another process
    # (pid 1). The child must not try to create the device (it used to, and fell back to
    # the kernel on EBUSY): it builds its own in-process network with the same impairments.
    code = PROBE + ("h = default_host()\n"
                    "print(sorted(i.name for i in h.ip.interfaces), h.loopback_impairment.delay)\n")
    result = python(code, {"MULTISOCK": "1", "MULTISOCK_TUN": "lo",
                           "MULTISOCK_ADDR": "10.77.0.2/24", "MULTISOCK_PEER": "10.77.0.1",
                           "MULTISOCK_TUN_OWNER": "1", "MULTISOCK_DELAY": "3ms"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{MARK} multisock.socket"
    assert lines[1] == "['eth0', 'lo'] 0.003"  # no interface for the device: not attached


def test_gevent_error_under_the_shims_names_the_variable() -> None:
    pytest.importorskip("gevent", reason="gevent not installed (pip install '.[gevent]')")
    code = ("from gevent import monkey\n"
            "try:\n"
            "    monkey.patch_all()\n"
            "except RuntimeError as exc:\n"
            "    print(exc)\n")
    result = python(code, {"MULTISOCK": "1"})
    assert "MULTISOCK_GEVENT=1" in result.stdout, result.stdout + result.stderr


# --------------------------------------------------------------- the documented limit (item 17)

LIMIT = '''
import socket, subprocess, sys
if sys.argv[1:] == ["child"]:
    s = socket.socket()
    s.bind(("127.0.0.1", 8765))
    s.listen()
    print("READY", flush=True)
    sys.stdin.read()
    sys.exit()
child = subprocess.Popen([sys.executable, __file__, "child"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "READY\\n"
c = socket.socket()
c.settimeout(10)
try:
    c.connect(("127.0.0.1", 8765))
    print("reached")
except ConnectionRefusedError:
    print("refused")
child.communicate("")
'''


def test_readme_limit_parent_reaches_a_child_only_through_the_kernel(tmp_path: Path) -> None:
    # README, "Limits": each process has its own network; the gateway joins them through the
    # kernel. Under run the child is not activated: its kernel server is reached through the
    # parent's gateway. Under the shims the child's server is virtual: unreachable unless the
    # child publishes its port. If this changes, the README must change with it.
    script = tmp_path / "limit.py"
    script.write_text(LIMIT)
    code = f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')"
    shims = python(code, {"MULTISOCK": "1"})
    assert shims.stdout.split() == ["refused"], shims.stderr
    isolated = python(code, {"MULTISOCK": "1", "MULTISOCK_ISOLATED": "1"})
    assert isolated.stdout.split() == ["refused"], isolated.stderr
    result = launcher(str(script))
    assert result.stdout.split() == ["reached"], result.stderr
    result = launcher("--isolated", str(script))
    assert result.stdout.split() == ["refused"], result.stderr


def test_a_bad_seed_for_the_implicit_default_host_names_the_variable() -> None:
    """Without activation, the first bare socket builds a default host from MULTISOCK_SEED:
    a bad value is refused with the variable's name (int()'s own message named nothing)."""
    import multisock.runtime as runtime

    saved = os.environ.get("MULTISOCK_SEED")
    os.environ["MULTISOCK_SEED"] = "abc"
    try:
        with pytest.raises(ValueError, match="MULTISOCK_SEED='abc'"):
            runtime._create_default()
    finally:
        if saved is None:
            del os.environ["MULTISOCK_SEED"]
        else:
            os.environ["MULTISOCK_SEED"] = saved
