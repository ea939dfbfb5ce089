"""The stack and the Linux kernel over TUN: ICMP echo and UDP, both ways, both families."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from tests.tun.netns import Namespace, namespace, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
HERE = Path(__file__).resolve().parent
AGENT = str(HERE / "stack_agent.py")
PEER = str(HERE / "kernel_peer.py")

V4 = (["--addr", "10.77.0.2/24", "--peer", "10.77.0.1"], "10.77.0.2", "10.77.0.1")
V6 = (["--addr", "fd77::2/64", "--peer", "fd77::1"], "fd77::2", "fd77::1")


def start_agent(ns: Namespace, *args: str) -> subprocess.Popen[str]:
    proc = ns.popen(*ns.python(AGENT, *args))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"agent did not start: {line}{out}{err}")
    return proc


def finish(proc: subprocess.Popen[str]) -> dict[str, str]:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    values["_output"] = out + err
    return values


@pytest.mark.parametrize("family", [V4, V6], ids=["ipv4", "ipv6"])
def test_kernel_pings_stack_and_stack_pings_kernel(family: tuple[list[str], str, str]) -> None:
    opts, stack_ip, kernel_ip = family
    with namespace() as ns:
        agent = start_agent(ns, "idle", "--seconds", "15", *opts)
        try:
            result = ns.run(*ns.python(PEER, "ping", stack_ip), timeout=20)
            assert "RTT_MS=" in result.stdout, result.stderr
        finally:
            agent.kill()
            agent.communicate()
        agent = start_agent(ns, "ping", "--target", kernel_ip, *opts)
        values = finish(agent)
        assert "RTT_MS" in values, values  # the agent's whole output, when it has none
        assert float(values["RTT_MS"]) < 100


@pytest.mark.parametrize("family", [V4, V6], ids=["ipv4", "ipv6"])
def test_udp_both_ways(family: tuple[list[str], str, str]) -> None:
    opts, stack_ip, kernel_ip = family
    with namespace() as ns:
        agent = start_agent(ns, "serve-udp", "--port", "9000", *opts)
        for _ in range(3):
            result = ns.run(*ns.python(PEER, "udp", stack_ip, "9000"), timeout=20)
            assert result.stdout.strip() == "REPLY=" + "hello stack"[::-1], result.stderr
        assert finish(agent)["ECHOED"] == "3"
        # the wildcard: the peer address only exists while the agent's TUN device does
        wildcard = "::" if ":" in kernel_ip else "0.0.0.0"
        echo = ns.popen(*ns.python(PEER, "udp-echo", wildcard, "9100"))
        assert echo.stdout is not None and echo.stdout.readline().strip() == "READY"
        agent = start_agent(ns, "send-udp", "--target", kernel_ip, "--port", "9100", *opts)
        assert finish(agent)["REPLY"] == "FROM THE STACK"
        echo.communicate(timeout=10)


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
@pytest.mark.parametrize("family", [V4, V6], ids=["ipv4", "ipv6"])
def test_udp_datagram_larger_than_the_mtu(family: tuple[list[str], str, str],
                                          offload: bool) -> None:
    """A 5000-byte datagram each way: fragmented by the stack and by the kernel. With
    offloads the kernel completes whole packets' checksums, not a fragmented datagram's:
    the stack computes that one itself, and verifies the kernel's fragments after
    reassembly (the kernel does not vouch for them)."""
    opts, _stack_ip, kernel_ip = family
    with namespace() as ns:
        wildcard = "::" if ":" in kernel_ip else "0.0.0.0"
        echo = ns.popen(*ns.python(PEER, "udp-echo", wildcard, "9100"))
        assert echo.stdout is not None and echo.stdout.readline().strip() == "READY"
        extra = [] if offload else ["--no-offload"]
        agent = start_agent(ns, "send-udp", "--target", kernel_ip, "--port", "9100",
                            "--size", "5000", *extra, *opts)
        values = finish(agent)
        assert values["REPLY_MATCHES"] == "True" and values["REPLY_LEN"] == "5000"
        counters = ast.literal_eval(values["TUN_COUNTERS"])  # the agent prints a dict's repr
        assert counters["rx_packets"] >= 4 and counters["tx_packets"] >= 4  # fragments
        if offload:
            assert counters["rx_verified_here"] >= 4  # the kernel's fragments: checked here
        echo.communicate(timeout=10)
