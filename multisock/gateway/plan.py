"""The gateway's address plan and where each virtual destination goes on the kernel.

Like slirp's 10.0.2.0/24: the gateway is ``10.0.2.2`` (and ``fd00::2``), which stands for
the host's own loopback; virtual hosts attached to it get ``10.0.2.15``, ``.16``... (and
``fd00::15``...). Any other destination outside the virtual subnets is itself on the kernel
side. Destinations inside the virtual subnets that are not the gateway are unreachable (the
kernel must never be asked to connect to addresses that are only virtual).
"""

from __future__ import annotations

from typing import Any

from multisock.gateway import kernel
from multisock.gateway.tcp import UNREACHABLE
from multisock.stack import addresses as A

GATEWAY4, PREFIX4 = "10.0.2.2", 24
GATEWAY6, PREFIX6 = "fd00::2", 64
FIRST_GUEST = 15  # slirp's first guest address, 10.0.2.15
KERNEL_LOOPBACK4 = A.pack("127.0.0.1")
KERNEL_LOOPBACK6 = A.pack("::1")


def guest_addresses(index: int) -> tuple[str, str]:
    """The ``index``-th attached host's (IPv4, IPv6) address, as CIDRs."""
    n = FIRST_GUEST + index
    if n > 254:
        raise ValueError("a gateway has room for 240 attached hosts")
    return f"10.0.2.{n}/{PREFIX4}", f"fd00::{n:x}/{PREFIX6}"


class AddressPlan:
    """Maps a destination a virtual host asked for to a kernel address (or refuses)."""

    def __init__(self, gateway4: str = GATEWAY4, gateway6: str = GATEWAY6,
                 prefix4: int = PREFIX4, prefix6: int = PREFIX6) -> None:
        self.gateway4 = A.pack(gateway4)
        self.gateway6 = A.pack(gateway6)
        self.prefix4 = prefix4
        self.prefix6 = prefix6

    def kernel_address(self, dst: bytes) -> bytes | None:
        """The kernel address ``dst`` stands for; None when it is virtual only."""
        if dst == self.gateway4:
            return KERNEL_LOOPBACK4
        if dst == self.gateway6:
            return KERNEL_LOOPBACK6
        if len(dst) == 4:
            if A.same_prefix(dst, self.gateway4, self.prefix4):
                return None
        elif A.same_prefix(dst, self.gateway6, self.prefix6):
            return None
        return dst

    def virtual_address(self, src: bytes) -> bytes:
        """How a kernel address looks from the virtual side (the loopback is the gateway)."""
        if src == KERNEL_LOOPBACK4 or (len(src) == 4 and src[0] == 127):
            return self.gateway4
        if src == KERNEL_LOOPBACK6:
            return self.gateway6
        return src

    def udp_target(self, dst: bytes, port: int) -> Any:
        real = self.kernel_address(dst)
        if real is None or A.is_multicast(dst) or A.is_v4_broadcast(dst):
            return None
        return kernel.sockaddr(real, port)

    def tcp_target(self, dst: bytes, port: int) -> Any:
        real = self.kernel_address(dst)
        if real is None:
            return UNREACHABLE
        return kernel.sockaddr(real, port)


def loopback_target(dst: bytes, port: int) -> Any:
    """A virtual host's own loopback, relayed to the kernel's: 127.0.0.0/8 and ::1 only."""
    if (len(dst) == 4 and dst[0] == 127) or dst == KERNEL_LOOPBACK6:
        return kernel.sockaddr(dst, port)
    return None


def loopback_udp_target(dst: bytes, port: int) -> Any:
    target = loopback_target(dst, port)
    return target


def same_address(addr: bytes) -> bytes:
    """Replies to a loopback relay come from the loopback address they went to."""
    return addr
