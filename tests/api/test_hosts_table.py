"""The /etc/hosts-style table behind ``--hosts`` and ``host.hosts_table``."""

from __future__ import annotations

import socket
from pathlib import Path

import multisock
import multisock.socket as msock
from multisock.hosts import HostsTable
from multisock.runtime import use_host

TEXT = """
# comment line
10.9.0.5   db.internal db   # trailing comment
fd00::5    db.internal
not-an-ip  ignored
10.9.0.6   CACHE
"""


def test_parse_lookup_reverse(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(TEXT)
    table = HostsTable.from_file(str(path))
    assert table.lookup("DB.internal", socket.AF_UNSPEC) == ["10.9.0.5", "fd00::5"]
    assert table.lookup("db", socket.AF_INET6) == []
    assert table.lookup("cache.", socket.AF_INET) == ["10.9.0.6"]
    assert table.lookup("ignored", socket.AF_UNSPEC) == []
    assert table.reverse("10.9.0.5") == ["db.internal", "db"]


def test_getaddrinfo_uses_the_hosts_table() -> None:
    with multisock.Network(seed=1) as net:
        host = net.add_host("h", "10.9.0.1/24")
        host.hosts_table = HostsTable.parse(TEXT)
        with use_host(host):
            assert msock.gethostbyname("db") == "10.9.0.5"
            assert msock.gethostbyaddr("10.9.0.6")[0] == "cache"
            infos = msock.getaddrinfo("db.internal", 5432, type=socket.SOCK_STREAM)
            assert [i[4][0] for i in infos] == ["10.9.0.5", "fd00::5"]
