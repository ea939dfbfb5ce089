"""Shared pieces for the TLS tests: a throw-away PKI (trustme) and a virtual host."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

import multisock
from multisock import monkey
from multisock.runtime import set_default_host

TLS12 = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
TLS13 = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)


@dataclass
class Pki:
    ca: trustme.CA
    other_ca: trustme.CA  # trusted by nobody: "unknown CA"
    server: trustme.LeafCert  # localhost only (127.0.0.1 is a hostname mismatch)
    client: trustme.LeafCert  # a client certificate from the same CA
    ca_file: Path

    def server_ctx(self, *, client_cert: bool = False,
                   versions: tuple[ssl.TLSVersion, ssl.TLSVersion] | None = None,
                   alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(ctx)
        if client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        if versions:
            ctx.minimum_version, ctx.maximum_version = versions
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def client_ctx(self, *, trust: str = "ca", client_cert: bool = False,
                   versions: tuple[ssl.TLSVersion, ssl.TLSVersion] | None = None,
                   alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        {"ca": self.ca, "other": self.other_ca}[trust].configure_trust(ctx)
        if client_cert:
            self.client.configure_cert(ctx)
        if versions:
            ctx.minimum_version, ctx.maximum_version = versions
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca=ca, other_ca=trustme.CA(), server=ca.issue_cert("localhost"),
               client=ca.issue_cert("client@example.test", common_name="test client"),
               ca_file=ca_file)


@pytest.fixture
def stack() -> Iterator[multisock.Host]:
    """A virtual host as the process default, with everything patched (ssl included)."""
    net = multisock.Network(seed=10)
    host = net.add_host("tlshost")
    host.impair_loopback(delay="1ms")
    set_default_host(host)
    monkey.patch_all()
    try:
        yield host
    finally:
        monkey.unpatch_all()
        set_default_host(None)
        net.close()


def kernel_refused(port: int) -> bool:
    """True if the kernel's loopback has nothing on ``port`` (the server lives on the stack)."""
    kernel = monkey.get_original("socket", "socket")()
    kernel.settimeout(5)
    try:
        return kernel.connect_ex(("127.0.0.1", port)) != 0
    finally:
        kernel.close()
