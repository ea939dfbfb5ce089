"""Facade behaviours CPython's test_socket checks, each compared with the kernel's socket.

Each test is a bug test_socket found under multisock (fd sharing and close, detach, the fd's
O_NONBLOCK flag, argument errors, resource warnings, sendfile's structure, names).
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import socket as kernel
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import multisock
import multisock.socket as msock
from multisock.runtime import use_host


@pytest.fixture
def host() -> Iterator[multisock.Host]:
    net = multisock.Network(seed=22)
    h = net.add_host("facade", "10.22.0.1/24")
    with use_host(h):
        yield h
    net.close()


def pair(mod: Any) -> tuple[Any, Any, Any]:
    srv = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    cli.connect(srv.getsockname())
    conn, _ = srv.accept()
    return srv, cli, conn


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_second_close_through_the_same_fd_is_ebadf(host: multisock.Host, mod: Any) -> None:
    s = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    mod.socket(fileno=s.fileno()).close()
    with pytest.raises(OSError) as info:
        s.close()
    assert info.value.errno == errno.EBADF
    t = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    mod.close(t.fileno())
    with pytest.raises(OSError):
        t.listen(1)
    with pytest.raises(OSError):
        t.close()


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_detach_leaves_the_fd_to_a_new_socket(host: multisock.Host, mod: Any) -> None:
    srv, cli, conn = pair(mod)
    try:
        fd = conn.fileno()
        assert conn.detach() == fd
        with pytest.raises(OSError):
            conn.recv(10)
        conn.close()
        again = mod.socket(mod.AF_INET, mod.SOCK_STREAM, fileno=fd)
        cli.sendall(b"hello")
        assert again.recv(10) == b"hello"
        again.close()
    finally:
        srv.close()
        cli.close()


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_socket_from_fileno_keeps_given_or_real_family(host: multisock.Host, mod: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        unix = mod.socket(mod.AF_UNIX, mod.SOCK_STREAM)
        unix.bind(os.path.join(tmp, "s"))
        same = mod.socket(fileno=unix.fileno())
        unix.detach()
        assert same.family == mod.AF_UNIX
        same.close()
    s = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    fd = s.detach()
    with mod.socket(family=99, type=17, proto=23, fileno=fd) as odd:
        assert (odd.family, odd.type) == (99, 17)


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_fd_nonblock_flag_follows_timeout(host: multisock.Host, mod: Any) -> None:
    with mod.socket(mod.AF_INET, mod.SOCK_STREAM) as s:
        def nonblocking() -> bool:
            return bool(fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)

        assert not nonblocking()
        s.settimeout(2.0)
        assert nonblocking()
        s.setblocking(True)
        assert not nonblocking()
        s.setblocking(False)
        assert nonblocking()
    with mod.socket(mod.AF_INET, mod.SOCK_STREAM | mod.SOCK_NONBLOCK) as s:
        assert s.type == mod.SOCK_STREAM
        assert fcntl.fcntl(s.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_inheritable_is_the_fds(host: multisock.Host, mod: Any) -> None:
    with mod.socket(mod.AF_INET, mod.SOCK_STREAM) as s:
        assert s.get_inheritable() is False
        s.set_inheritable(True)
        assert s.get_inheritable() is True


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_argument_errors_match(host: multisock.Host, mod: Any) -> None:
    with mod.socket(mod.AF_INET, mod.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(TypeError, match="^a bytes-like object is required, not 'str'$"):
            s.sendto("x", s.getsockname())
        with pytest.raises(TypeError, match="not NoneType"):
            s.sendto(b"x", 0, None)
        with pytest.raises(TypeError, match=r"\(1 given\)"):
            s.sendto(b"x")
        with pytest.raises(TypeError, match=r"\(4 given\)"):
            s.sendto(b"x", 0, s.getsockname(), 4)
        with pytest.raises(ValueError):
            s.recvmsg_into([bytearray(4)], -1, 0)
        with pytest.raises(TypeError):
            s.recvmsg_into([b"read-only"], 0, 0)
    with mod.socket(mod.AF_INET, mod.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(OverflowError):
            s.listen(2**31)
        with pytest.raises(OverflowError):
            s.shutdown(2**31)
    with pytest.raises(OverflowError):
        mod.getnameinfo(("::1", 0, 0xFFFFFFFF), 0)


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_unclosed_socket_warns_and_closes(host: multisock.Host, mod: Any) -> None:
    s = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    text = repr(s)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del s
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) and text in str(w.message)
               for w in caught)


def test_sendfile_has_the_stdlib_structure(host: multisock.Host) -> None:
    class File:
        def __init__(self, fd: Any) -> None:
            self.fd = fd

        def fileno(self) -> Any:
            return self.fd

    with msock.socket() as sock:
        fd = os.open(os.curdir, os.O_RDONLY)
        os.close(fd)
        with pytest.raises(kernel._GiveupOnSendfile):  # type: ignore[attr-defined]
            sock._sendfile_use_sendfile(File(fd))
        with pytest.raises(OverflowError):
            sock._sendfile_use_sendfile(File(2**1000))
        with pytest.raises(TypeError):
            sock._sendfile_use_sendfile(File(None))
    srv, cli, conn = pair(msock)
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * 100_000)
        f.seek(0)
        assert cli.sendfile(f, 10, 50_000) == 50_000
        assert f.tell() == 50_010
        # the path CPython's SendfileUsingSendfileTest calls directly
        assert cli._sendfile_use_sendfile(f, 99_000) == 1_000
        got = b""
        while len(got) < 51_000:
            got += conn.recv(65536)
        assert got == b"x" * 51_000
    for s in (srv, cli, conn):
        s.close()


def test_accept_fd_form_and_hostname(host: multisock.Host) -> None:
    srv = msock.socket(msock.AF_INET, msock.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    cli = msock.create_connection(srv.getsockname())
    fd, addr = srv._accept()
    conn = msock.socket(msock.AF_INET, msock.SOCK_STREAM, fileno=fd)
    assert addr == cli.getsockname()
    cli.sendall(b"ok")
    assert conn.recv(2) == b"ok"
    for s in (srv, cli, conn):
        s.close()
    old = msock.gethostname()
    msock.sethostname(b"renamed")
    assert msock.gethostname() == "renamed"
    msock.sethostname(old)
    name, _ = msock.getnameinfo(("ff02::1", 1, 0, 1),
                                msock.NI_NUMERICHOST | msock.NI_NUMERICSERV)
    assert name == "ff02::1%lo"
    *_, sockaddr = msock.getaddrinfo("ff02::1%lo", 1, msock.AF_INET6, msock.SOCK_DGRAM)[0]
    assert sockaddr == ("ff02::1", 1, 0, 1)


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_setblocking_on_a_socket_closed_through_its_fd(host: multisock.Host, mod: Any) -> None:
    first = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    second = mod.socket(mod.AF_INET, mod.SOCK_STREAM, 0, first.fileno())
    first.close()
    with pytest.raises(OSError):
        second.setblocking(False)
    second.detach()


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_ipv6_hop_limit_and_tclass_ancillary_data(host: multisock.Host, mod: Any) -> None:
    import array

    srv = mod.socket(mod.AF_INET6, mod.SOCK_DGRAM)
    cli = mod.socket(mod.AF_INET6, mod.SOCK_DGRAM)
    try:
        srv.bind(("::1", 0))
        srv.setsockopt(mod.IPPROTO_IPV6, mod.IPV6_RECVHOPLIMIT, 1)
        srv.setsockopt(mod.IPPROTO_IPV6, mod.IPV6_RECVTCLASS, 1)
        hop = array.array("i", [2])
        tclass = array.array("i", [0x20])
        assert cli.sendmsg([b"msg"], [(mod.IPPROTO_IPV6, mod.IPV6_TCLASS, tclass),
                                      (mod.IPPROTO_IPV6, mod.IPV6_HOPLIMIT, hop)],
                           0, srv.getsockname()) == 3
        data, anc, flags, _ = srv.recvmsg(10, 10240)
        assert data == b"msg" and not flags & mod.MSG_CTRUNC
        got = {(lvl, typ): array.array("i", raw)[0] for lvl, typ, raw in anc}
        assert got == {(mod.IPPROTO_IPV6, mod.IPV6_HOPLIMIT): 2,
                       (mod.IPPROTO_IPV6, mod.IPV6_TCLASS): 0x20}
        # a buffer with room for one message: the second is cut and MSG_CTRUNC says so
        cli.sendto(b"two", srv.getsockname())
        data, anc, flags, _ = srv.recvmsg(10, kernel.CMSG_SPACE(4) + 1)
        assert len(anc) == 1 and flags & mod.MSG_CTRUNC
        # a too-long control message is EINVAL, as on Linux
        with pytest.raises(OSError) as info:
            cli.sendmsg([b"x"], [(mod.IPPROTO_IPV6, mod.IPV6_TCLASS, bytes(5))], 0,
                       srv.getsockname())
        assert info.value.errno == errno.EINVAL
        with pytest.raises(TypeError):
            cli.sendmsg([b"x"], [(0, 0)], 0, srv.getsockname())
    finally:
        srv.close()
        cli.close()


@pytest.mark.parametrize("mod", [kernel, msock], ids=["kernel", "multisock"])
def test_connect_again_after_a_refused_attempt(host: multisock.Host, mod: Any) -> None:
    # found by asyncio's test_sock_client_connect_racing: Linux lets a socket whose connect
    # failed connect again (a failed non-blocking one reports the error, or ECONNABORTED once
    # SO_ERROR took it, on the next call, then starts afresh)
    import select as kernel_select

    from multisock import select as mselect

    sel = kernel_select.select if mod is kernel else mselect.select
    listener = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    addr = listener.getsockname()
    s = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    s.setblocking(False)
    assert s.connect_ex(addr) == errno.EINPROGRESS
    assert sel([], [s], [], 30)[1] == [s]
    assert s.getsockopt(mod.SOL_SOCKET, mod.SO_ERROR) == errno.ECONNREFUSED
    listener.listen(1)
    assert s.connect_ex(addr) == errno.ECONNABORTED
    assert s.connect_ex(addr) in (0, errno.EINPROGRESS)
    assert sel([], [s], [], 30)[1] == [s]
    assert s.connect_ex(addr) == 0  # the second call after success reports it once
    assert s.connect_ex(addr) == errno.EISCONN
    s.close()
    blocking = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    other = mod.socket(mod.AF_INET, mod.SOCK_STREAM)
    other.bind(("127.0.0.1", 0))
    with pytest.raises(ConnectionRefusedError):
        blocking.connect(other.getsockname())
    other.listen()
    blocking.connect(other.getsockname())
    for sock in (blocking, other, listener):
        sock.close()
