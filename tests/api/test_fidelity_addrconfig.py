"""getaddrinfo(..., flags=AI_ADDRCONFIG) as glibc does it, over the host's own addresses.

The kernel side runs in a network namespace this test creates, configured like the
virtual host (loopback only, IPv4 only, IPv6 only, both), so glibc looks at exactly the
addresses multisock's host has. Before, multisock ignored the flag.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host

# the probe: the same code on both sides, a list of outcomes (no names: only numeric hosts
# and None, which need no resolver; the families and AI_PASSIVE vary)
PROBE = """
def probe(mod):
    out = []
    for host in (None, "127.0.0.1", "::1", "10.77.0.1", "fd77::1"):
        for family in (mod.AF_UNSPEC, mod.AF_INET, mod.AF_INET6):
            for extra in (0, mod.AI_PASSIVE):
                flags = mod.AI_ADDRCONFIG | extra
                try:
                    infos = mod.getaddrinfo(host, 80, family, mod.SOCK_STREAM, 0, flags)
                    out.append([int(f) for f, *_ in infos] + [i[4][0] for i in infos])
                except OSError as exc:
                    out.append([type(exc).__name__, exc.errno])
    return out
"""

CONFIGS = {
    "loopback only": [],
    "ipv4": ["10.77.0.1/24"],
    "ipv6": ["fd77::1/64"],
    "both": ["10.77.0.1/24", "fd77::1/64"],
    "other loopback": ["127.0.0.2/8"],
}


def _kernel_outcomes(addresses: list[str]) -> Any:
    from tests.tun.netns import namespace

    with namespace() as ns:
        for cidr in addresses:
            # on lo: glibc counts every address but 127.0.0.1 and ::1, whatever the device
            ns.run("ip", "addr", "add", cidr, "dev", "lo", *(["nodad"] if ":" in cidr else []))
        code = PROBE + "\nimport json, socket\nprint(json.dumps(probe(socket)))\n"
        done = ns.run(sys.executable, "-c", code)
        return json.loads(done.stdout)


def _multisock_outcomes(addresses: list[str]) -> Any:
    scope: dict[str, Any] = {}
    exec(PROBE, scope)
    net = multisock.Network(seed=5)
    try:
        host = net.add_host("cfg", *[a for a in addresses if not a.startswith("127.")])
        for cidr in addresses:
            if cidr.startswith("127."):
                host.ip.add_address(host.loopback, cidr)
        with use_host(host):
            return json.loads(json.dumps(scope["probe"](msock)))
    finally:
        net.close()


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the kernel side needs a network namespace (root for ip netns); not root here"
    if shutil.which("ip") is None:
        return "the kernel side needs iproute2's 'ip' command, not installed here"
    return None


@pytest.mark.skipif(_netns_unavailable() is not None, reason=str(_netns_unavailable()))
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_same_as_glibc(config: str) -> None:
    expected = _kernel_outcomes(CONFIGS[config])
    got = _multisock_outcomes(CONFIGS[config])
    assert any(o[0] == "gaierror" for o in expected) or config == "both"
    mismatches = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g]
    assert not mismatches, mismatches
