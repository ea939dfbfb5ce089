"""``localhost`` follows the host's hosts file, as glibc's getaddrinfo does: a file that lists
only 127.0.0.1 gives no ::1 (httplib2's SOCKS tests, through PySocks, saw the difference)."""

from __future__ import annotations

import socket

import multisock
from multisock.hosts import HostsTable
from multisock.runtime import use_host
from multisock.socket import getaddrinfo


def _addresses(host: multisock.Host, family: int) -> list[str]:
    with use_host(host):
        return [info[4][0] for info in getaddrinfo("localhost", 80, family, socket.SOCK_STREAM)]


def test_localhost_answers_what_the_hosts_file_lists() -> None:
    with multisock.Network(seed=1) as net:
        host = net.add_host("h", "10.0.0.1/24", "fd00::1/64")
        assert _addresses(host, socket.AF_UNSPEC) == ["127.0.0.1", "::1"]  # no file: built in
        host.hosts_table = HostsTable.parse("127.0.0.1 localhost\n")
        assert _addresses(host, socket.AF_UNSPEC) == ["127.0.0.1"]
        # a family the file does not list for it still gets the loopback address
        assert _addresses(host, socket.AF_INET6) == ["::1"]
        host.hosts_table = HostsTable.parse("::1 localhost\n127.0.0.1 localhost\n")
        assert _addresses(host, socket.AF_UNSPEC) == ["::1", "127.0.0.1"]


def test_localhost_matches_the_kernel_with_this_machines_hosts_file() -> None:
    kernel = [info[4][0] for info in socket.getaddrinfo("localhost", 80, 0, socket.SOCK_STREAM)]
    with multisock.Network(seed=1) as net:
        host = net.add_host("h", "10.0.0.1/24", "fd00::1/64")
        host.hosts_table = HostsTable.from_file("/etc/hosts")
        assert sorted(_addresses(host, socket.AF_UNSPEC)) == sorted(kernel)
