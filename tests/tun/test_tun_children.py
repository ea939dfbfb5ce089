"""Shims with MULTISOCK_TUN: the parent holds the device, its Python children do not
re-create it (issue 15 item 14). They used to fail with EBUSY and run on kernel sockets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.tun.netns import ROOT, namespace, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

REPORT = textwrap.dedent('''
    import os, socket, subprocess, sys
    from multisock.runtime import default_host
    h = default_host()
    print(sys.argv[1], socket.socket.__module__, sorted(i.name for i in h.ip.interfaces),
          h.loopback_impairment.delay, flush=True)
    if sys.argv[1] == "parent":
        sys.exit(subprocess.call([sys.executable, __file__, "child"]))
''')


def test_children_of_the_tun_owner_get_their_own_network() -> None:
    script = f"/tmp/msk-tun-children-{os.getpid()}.py"
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(REPORT)
    try:
        with namespace() as ns:
            env = {k: v for k, v in os.environ.items() if not k.startswith("MULTISOCK")}
            env.update(PYTHONPATH=f"{ROOT / 'shims'}:{ROOT}", MULTISOCK="1",
                       MULTISOCK_TUN="mskc0", MULTISOCK_ADDR="10.79.0.2/24",
                       MULTISOCK_PEER="10.79.0.1", MULTISOCK_DELAY="2ms")
            result = subprocess.run(ns.cmd(sys.executable, script, "parent"), capture_output=True,
                                    text=True, timeout=120, env=env)
    finally:
        os.unlink(script)
    assert result.returncode == 0, result.stdout + result.stderr
    parent, child = result.stdout.splitlines()
    assert parent == "parent multisock.socket ['eth0', 'lo', 'mskc0'] 0.002"
    assert child == "child multisock.socket ['eth0', 'lo'] 0.002"
    assert "Error" not in result.stderr, result.stderr
