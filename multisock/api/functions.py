"""Module-level functions of ``multisock.socket``: resolution, helpers, socketpair.

They work on the *current* virtual host (:mod:`multisock.runtime`) and never
ask the kernel's resolver about a name: a program under multisock sees the
names of its virtual network, its hosts table and its DNS server.
"""

from __future__ import annotations

import _socket
import errno
import socket as _stdlib
from typing import Any

from multisock import net
from multisock.api.resolve import candidates
from multisock.runtime import default_host, patched_modules
from multisock.stack import addresses as A

AF_UNSPEC = _socket.AF_UNSPEC
AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_RAW = _socket.SOCK_RAW
_GLOBAL_DEFAULT_TIMEOUT = _stdlib._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

_PROTO_FOR_TYPE = {SOCK_STREAM: _socket.IPPROTO_TCP, SOCK_DGRAM: _socket.IPPROTO_UDP, SOCK_RAW: 0}


def _gai(code: int, message: str) -> OSError:
    return _socket.gaierror(code, message)


def _numeric(host: str) -> bytes | None:
    for family in (AF_INET, AF_INET6):
        try:
            return _socket.inet_pton(family, host.split("%", 1)[0] if family == AF_INET6 else host)
        except OSError:
            continue
    try:
        return _socket.inet_aton(host) if host.count(".") <= 3 and host[:1].isdigit() else None
    except OSError:
        return None


def _service_port(port: Any, socktype: int, flags: int) -> int:
    if port is None:
        return 0
    if isinstance(port, int):
        return port & 0xFFFF
    if isinstance(port, (bytes, bytearray)):
        port = bytes(port).decode()
    if isinstance(port, str):
        if port.isdigit():
            return int(port) & 0xFFFF
        if flags & _socket.AI_NUMERICSERV:
            raise _gai(_socket.EAI_NONAME, "Name or service not known")
        proto = "udp" if socktype == SOCK_DGRAM else "tcp"
        try:
            return int(_socket.getservbyname(port, proto))
        except OSError:
            raise _gai(_socket.EAI_SERVICE, "Servname not supported for ai_socktype") from None
    raise OSError("Int or String expected")


def getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[tuple[Any, Any, int, str, tuple[Any, ...]]]:
    """Like the stdlib's, answered from the virtual network (numeric, names, hosts, DNS)."""
    if host is not None and not isinstance(host, (str, bytes, bytearray)):
        raise TypeError("getaddrinfo() argument 1 must be string or None")
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("idna")
    if host is not None and isinstance(host, str) and host and not host.isascii():
        host = host.encode("idna").decode("ascii")
    if family not in (AF_UNSPEC, AF_INET, AF_INET6):
        raise _gai(_socket.EAI_FAMILY, "ai_family not supported")
    if type not in (0, SOCK_STREAM, SOCK_DGRAM, SOCK_RAW):
        raise _gai(_socket.EAI_SOCKTYPE, "ai_socktype not supported")
    if host is None and port is None:
        raise _gai(_socket.EAI_NONAME, "Name or service not known")
    numeric_port = _service_port(port, type, flags)
    if flags & _socket.AI_ADDRCONFIG:
        family = _addrconfig_family(family)
    canon = ""
    scope = 0
    if host is None or host == "":
        if host == "" and not flags & _socket.AI_PASSIVE:
            raise _gai(_socket.EAI_NONAME, "Name or service not known")
        passive = bool(flags & _socket.AI_PASSIVE)
        addrs = []
        if family in (AF_UNSPEC, AF_INET6):
            addrs.append(A.ANY6 if passive else A.LOOPBACK6)
        if family in (AF_UNSPEC, AF_INET):
            addrs.append(A.ANY4 if passive else A.LOOPBACK4)
        if family == AF_UNSPEC and passive:
            addrs.reverse()  # glibc: 0.0.0.0 before ::, but ::1 before 127.0.0.1 (RFC 6724)
    else:
        packed = _numeric(host)
        if packed is not None:
            if family != AF_UNSPEC and A.family_of(packed) != family:
                raise _gai(_socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
            addrs = [packed]
            canon = host
            if "%" in host and len(packed) == 16:
                scope = _scope_id(host.split("%", 1)[1])
        else:
            if flags & _socket.AI_NUMERICHOST:
                raise _gai(_socket.EAI_NONAME, "Name or service not known")
            addrs = candidates(default_host(), host, family)
            if not addrs:
                raise _gai(_socket.EAI_NONAME, "Name or service not known")
            canon = host
    types = [type] if type else [SOCK_STREAM, SOCK_DGRAM, SOCK_RAW]
    out: list[tuple[Any, Any, int, str, tuple[Any, ...]]] = []
    for addr in addrs:
        fam = A.family_of(addr)
        for socktype in types:
            p = proto or _PROTO_FOR_TYPE.get(socktype, 0)
            if proto and socktype == SOCK_RAW:
                p = proto
            sockaddr: tuple[Any, ...] = (
                (A.unpack(addr), numeric_port)
                if fam == AF_INET
                else (A.unpack(addr), numeric_port, 0, scope)
            )
            name = canon if (flags & _socket.AI_CANONNAME and not out) else ""
            out.append(
                (_stdlib.AddressFamily(fam), _stdlib.SocketKind(socktype), p, name, sockaddr)
            )
    return out


def _addrconfig_family(family: int) -> int:
    """AI_ADDRCONFIG as glibc does it, over the virtual host's configured addresses.

    A family counts as configured when the host has an address of it other than 127.0.0.1
    and ::1 (glibc's ``__check_pf``; the rest of 127/8 counts, as do link-local addresses).
    Asked for a family it lacks: EAI_NONAME, even for a numeric host or None. Asked for
    either: narrowed to the one it has, or left alone when it has neither."""
    seen4 = seen6 = False
    for addr in default_host().ip.local_addresses():
        if len(addr) == 4:
            seen4 = seen4 or addr != A.LOOPBACK4
        else:
            seen6 = seen6 or addr != A.LOOPBACK6
    if family == AF_UNSPEC:
        if seen4 != seen6:
            return AF_INET if seen4 else AF_INET6
        return family
    if (family == AF_INET and not seen4) or (family == AF_INET6 and not seen6):
        raise _gai(_socket.EAI_NONAME, "Name or service not known")
    return family


def gethostbyname(hostname: str) -> str:
    return A.unpack(_first(hostname, AF_INET))


def _first(hostname: str, family: int) -> bytes:
    if not isinstance(hostname, str):
        raise TypeError(f"gethostbyname() argument 1 must be str, not {type(hostname).__name__}")
    packed = _numeric(hostname)
    if packed is not None and len(packed) == 4:
        return packed
    found = candidates(default_host(), hostname or default_host().name, family)
    if not found:
        raise _gai(_socket.EAI_NONAME, "Name or service not known")
    return found[0]


def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    packed = _numeric(hostname)
    if packed is not None and len(packed) == 4:
        return hostname, [], [hostname]
    found = candidates(default_host(), hostname, AF_INET)
    if not found:
        raise _gai(_socket.EAI_NONAME, "Name or service not known")
    return hostname, [], [A.unpack(a) for a in found]


def gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]:
    host = default_host()
    packed = _numeric(ip_address)
    if packed is None:
        name, _, addrs = gethostbyname_ex(ip_address)
        packed = A.pack(addrs[0])
    if A.is_loopback(packed):
        return "localhost", [], [A.unpack(packed)]
    for other in host.net.hosts.values():
        for iface in other.ip.interfaces:
            if not iface.loopback and iface.has_address(packed):
                return other.name, [], [A.unpack(packed)]
    table = getattr(host, "hosts_table", None)
    if table is not None:
        names = table.reverse(A.unpack(packed))
        if names:
            return names[0], names[1:], [A.unpack(packed)]
    raise _socket.herror(1, "Unknown host")


def gethostname() -> str:
    host = default_host()
    return host.hostname or host.name


def sethostname(name: Any) -> None:
    """The virtual host's name (``gethostname()``); the kernel's hostname is not touched."""
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("utf-8", "surrogateescape")
    if not isinstance(name, str):
        raise TypeError(f"sethostname() argument 1 must be str or bytes, not {type(name).__name__}")
    if len(name.encode("utf-8", "surrogateescape")) > 64:
        raise OSError(errno.EINVAL, "Invalid argument")
    default_host().hostname = name


def getfqdn(name: str = "") -> str:
    name = name.strip()
    if not name or name in ("0.0.0.0", "::"):
        name = gethostname()
    try:
        hostname, aliases, _ = gethostbyaddr(name)
    except OSError:
        return name
    for candidate in [hostname, *aliases]:
        if "." in candidate:
            return candidate
    return hostname


def getnameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
    """Like the stdlib's (argument checks as CPython's), answered from the virtual network."""
    if not isinstance(sockaddr, tuple):
        del sockaddr  # the traceback must not keep the caller's object alive (refcount test)
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    if not 2 <= len(sockaddr) <= 4 or not isinstance(sockaddr[0], str):
        raise TypeError("getnameinfo(): illegal sockaddr argument")
    host, port = sockaddr[0], sockaddr[1]
    flowinfo = sockaddr[2] if len(sockaddr) > 2 else 0
    scope_id = sockaddr[3] if len(sockaddr) > 3 else 0
    for value in (port, flowinfo, scope_id):
        if isinstance(value, float) or not hasattr(value, "__index__"):
            raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer")
    if not isinstance(flags, int):
        raise TypeError(f"'{type(flags).__name__}' object cannot be interpreted as an integer")
    flowinfo &= 0xFFFFFFFF
    scope_id &= 0xFFFFFFFF
    if flowinfo > 0xFFFFF:
        raise OverflowError("getnameinfo(): flowinfo must be 0-1048575.")
    infos = getaddrinfo(host, port, AF_UNSPEC, SOCK_DGRAM, 0, _socket.AI_NUMERICHOST)
    if len(infos) != 1:
        raise OSError("sockaddr resolved to multiple addresses")
    family = infos[0][0]
    if family == AF_INET and len(sockaddr) != 2:
        raise OSError("IPv4 sockaddr must be 2 tuple")
    addr_text = infos[0][4][0]
    if flags & _socket.NI_NUMERICHOST:
        name = addr_text
        if family == AF_INET6 and scope_id:
            name += "%" + _scope_name(A.pack(addr_text), scope_id)
    else:
        try:
            name = gethostbyaddr(addr_text)[0]
        except OSError:
            if flags & _socket.NI_NAMEREQD:
                raise _gai(_socket.EAI_NONAME, "Name or service not known") from None
            name = addr_text
    port &= 0xFFFF
    if flags & _socket.NI_NUMERICSERV:
        service = str(port)
    else:
        try:
            service = _socket.getservbyport(port, "udp" if flags & _socket.NI_DGRAM else "tcp")
        except OSError:
            service = str(port)
    return name, service


def _scope_name(packed: bytes, scope_id: int) -> str:
    """glibc: the interface name for link-local scopes when it has one, else the number."""
    link_local = packed[:2] == b"\xfe\x80" or (packed[0] == 0xFF and packed[1] & 0x0F == 2)
    if link_local:
        for iface in default_host().ip.interfaces:
            if iface.index == scope_id:
                return str(iface.name)
    return str(scope_id)


def _scope_id(text: str) -> int:
    """``%lo`` / ``%1`` after a numeric IPv6 address: the interface index (0 if unknown)."""
    if text.isdigit():
        return int(text)
    for iface in default_host().ip.interfaces:
        if iface.name == text:
            return int(iface.index)
    return 0


def if_nameindex() -> list[tuple[int, str]]:
    return [(i.index, i.name) for i in default_host().ip.interfaces]


def if_nametoindex(name: str) -> int:
    if not isinstance(name, str):
        raise TypeError(f"if_nametoindex(): argument must be str, not {type(name).__name__}")
    for iface in default_host().ip.interfaces:
        if iface.name == name:
            return iface.index
    raise OSError("no interface with this name")


def if_indextoname(index: int) -> str:
    if not isinstance(index, int):
        raise TypeError("an integer is required")
    if index < 0 or index > 0xFFFFFFFF:
        raise OverflowError("index is out of range")
    for iface in default_host().ip.interfaces:
        if iface.index == index:
            return iface.name
    raise OSError(errno.ENXIO, "No such device or address")


def has_dualstack_ipv6() -> bool:
    return True


def _patched_or_ours(name: str) -> Any:
    """What create_connection & co. call: while activated, the stdlib module's current
    attribute (so a program or a test that swaps ``socket.socket`` or ``socket.getaddrinfo``
    is obeyed, as with the stdlib's functions), else multisock's own."""
    import sys

    if "socket" in patched_modules:
        return getattr(sys.modules["socket"], name)
    if name == "socket":
        return net.socket_factory  # the facade's class, wired by the package root
    return globals()[name]


def create_connection(
    address: tuple[str, int],
    timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: tuple[str, int] | None = None,
    *,
    all_errors: bool = False,
) -> Any:
    """Try each address getaddrinfo gives, in order; the first that connects wins."""
    socket = _patched_or_ours("socket")
    resolve = _patched_or_ours("getaddrinfo")
    host, port = address
    errors: list[Exception] = []
    for family, socktype, proto, _canon, sockaddr in resolve(host, port, 0, SOCK_STREAM):
        sock = None
        try:
            sock = socket(family, socktype, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            errors.clear()
            return sock
        except OSError as exc:
            errors.append(exc)
            if sock is not None:
                sock.close()
    if not errors:
        raise OSError("getaddrinfo returns an empty list")
    try:
        if all_errors:
            raise ExceptionGroup("create_connection failed", errors)
        raise errors[0]
    finally:
        errors = []


def create_server(
    address: tuple[str, int],
    *,
    family: int = AF_INET,
    backlog: int | None = None,
    reuse_port: bool = False,
    dualstack_ipv6: bool = False,
) -> Any:
    socket = _patched_or_ours("socket")

    if reuse_port and not hasattr(_socket, "SO_REUSEPORT"):
        raise ValueError("SO_REUSEPORT not supported on this platform")
    if dualstack_ipv6 and family != AF_INET6:
        raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    sock = socket(family, SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        if family == AF_INET6:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 0 if dualstack_ipv6 else 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise OSError(exc.errno, f"{exc.strerror} (while attempting to bind on address {address!r})") from None
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


def socketpair(family: int | None = None, type: int = SOCK_STREAM, proto: int = 0) -> tuple[Any, Any]:
    """AF_UNIX (the default) is the kernel's; AF_INET/AF_INET6 pairs live on the stack."""
    socket = _patched_or_ours("socket")

    if family is None:
        family = _socket.AF_UNIX
    if family not in (AF_INET, AF_INET6):
        a, b = _socket.socketpair(family, type, proto)
        return (
            socket(family, type, proto, a.detach()),
            socket(family, type, proto, b.detach()),
        )
    if type != SOCK_STREAM:
        raise ValueError("Only SOCK_STREAM socket type is supported")
    if proto != 0:
        raise ValueError("Only protocol zero is supported")
    loopback = "127.0.0.1" if family == AF_INET else "::1"
    listener = socket(family, type, proto)
    try:
        listener.bind((loopback, 0))
        listener.listen()
        client = socket(family, type, proto)
        try:
            client.connect(listener.getsockname()[:2])
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    finally:
        listener.close()
    return server, client
