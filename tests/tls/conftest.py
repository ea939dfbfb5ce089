"""Shared pieces for the TLS tests: a throw-away PKI (trustme), a virtual host, and a
one-connection server."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

import multisock
from tests.patched_host import patched_default_host

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
    with patched_default_host(seed=10, name="tlshost", loopback_delay="1ms") as host:
        yield host


def serve(pki: Pki, handler: Callable[[Any], Any], wrap: bool = True
          ) -> tuple[int, Callable[[], Any]]:
    """One connection to 127.0.0.1 (of whatever ``socket`` is now: patched or the kernel's),
    TLS-wrapped unless ``wrap`` is false, served by ``handler`` in a thread; ``join()``
    returns the handler's result or raises its exception."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    result: list[Any] = []

    def run() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(20)
            if wrap:
                conn = pki.server_ctx().wrap_socket(conn, server_side=True)
            with conn:
                result.append(handler(conn))
        except Exception as exc:  # noqa: BLE001 - reported by join()
            result.append(exc)
        finally:
            listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> Any:
        thread.join(30)
        assert not thread.is_alive()
        if isinstance(result[0], Exception):
            raise result[0]
        return result[0]

    return listener.getsockname()[1], join
