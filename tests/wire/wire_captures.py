"""Real packets sent by the Linux kernel (6.x), captured for the wire codec tests.

How they were captured: a Python script running as root inside a private network
namespace (``unshare -n``) opened an AF_PACKET socket and made the kernel send
each packet: UDP datagrams between sockets on 127.0.0.1 / ::1, echo requests
from raw sockets (the replies are the kernel's), datagrams to closed ports (the
ICMP errors are the kernel's), sticky IPv4/IPv6 options, fragments after
``ip link set lo mtu 1280``, and, over a veth pair whose other end sat in a
second private namespace with link-local addresses only (169.254.7.1/.2,
fe80::1/::2, MACs 02:00:5e:00:00:01/02), ARP and neighbour discovery.
Transmit checksum offload was switched off on the veth pair (ethtool
STXCSUM), so those UDP checksums are complete; ``lo`` cannot switch it off, so
its UDP checksum fields hold what CHECKSUM_PARTIAL leaves there: the folded
pseudo-header sum (a free cross-check of ``pseudo_header_sum``).

Each constant is the whole captured frame: Ethernet header (zero MACs on
``lo``), network header, transport header, payload, split per layer below.
"""

from __future__ import annotations


def _hex(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# UDP over IPv4 on lo, "hello multisock\n" from 127.0.0.1:40000 to :40001.
UDP4 = _hex(
    """
    000000000000 000000000000 0800
    45 00 002c 1764 4000 40 11 255b 7f000001 7f000001
    9c40 9c41 0018 fe2b
    68656c6c6f206d756c7469736f636b0a
    """
)
# ver 4, IHL 5 | tos 0 | total 44 | id 0x1764 | DF, offset 0 | ttl 64 | UDP | csum | src | dst
# UDP: 40000 -> 40001, length 24, checksum field = pseudo-header partial sum (lo offload).

# ICMP echo request written by a raw socket (ident 0x1234, seq 1, "abcdefgh") ...
ICMP4_ECHO_REQUEST = _hex(
    """
    000000000000 000000000000 0800
    45 00 0024 19f7 4000 40 01 22e0 7f000001 7f000001
    08 00 5435 1234 0001 6162636465666768
    """
)
# ... and the kernel's reply: no DF, type 0, same ident/seq/data.
ICMP4_ECHO_REPLY = _hex(
    """
    000000000000 000000000000 0800
    45 00 0024 19f8 0000 40 01 62df 7f000001 7f000001
    00 00 5c35 1234 0001 6162636465666768
    """
)

# UDP "nobody here" to closed port 40009 ...
UNREACH4_ORIGINAL = _hex(
    """
    000000000000 000000000000 0800
    45 00 0027 17bc 4000 40 11 2508 7f000001 7f000001
    9c40 9c49 0013 fe26 6e6f626f64792068657265
    """
)
# ... and the kernel's port unreachable (tos 0xc0): type 3 code 3, unused word 0,
# then the whole original datagram quoted.
UNREACH4 = _hex(
    """
    000000000000 000000000000 0800
    45 c0 0043 1a35 0000 40 01 61c3 7f000001 7f000001
    03 03 a605 00000000
    45 00 0027 17bc 4000 40 11 2508 7f000001 7f000001
    9c40 9c49 0013 fe26 6e6f626f64792068657265
    """
)

# IPv4 with options set by IP_OPTIONS: NOP, then record route (type 7, length 11,
# pointer 8: the kernel already recorded 127.0.0.1 in the first slot, one slot is
# left): 12 bytes of options, IHL 8.
OPTS4 = _hex(
    """
    000000000000 000000000000 0800
    48 00 002c 17e1 4000 40 11 96cd 7f000001 7f000001
    01 07 0b 08 7f000001 00000000
    9c42 9c41 000c fe1f 6f707473
    """
)

# UDP over IPv6 on lo, "hello v6\n": ver 6, tclass 0, flow label 0x8621e (auto),
# plen 17, next header UDP, hop limit 64, ::1 -> ::1. Checksum field partial (lo).
UDP6 = _hex(
    """
    000000000000 000000000000 86dd
    6008621e 0011 11 40
    00000000000000000000000000000001 00000000000000000000000000000001
    9c40 9c41 0011 0024 68656c6c6f2076360a
    """
)

# ICMPv6 echo request from a raw socket (kernel fills the checksum) and the reply.
ICMP6_ECHO_REQUEST = _hex(
    """
    000000000000 000000000000 86dd
    600ca94c 000d 3a 40
    00000000000000000000000000000001 00000000000000000000000000000001
    80 00 27bd 4321 0007 70696e6736
    """
)
ICMP6_ECHO_REPLY = _hex(
    """
    000000000000 000000000000 86dd
    6007155b 000d 3a 40
    00000000000000000000000000000001 00000000000000000000000000000001
    81 00 26bd 4321 0007 70696e6736
    """
)

# UDP "closed" to ::1 port 40009 and the kernel's ICMPv6 port unreachable (1/4).
UNREACH6_ORIGINAL = _hex(
    """
    000000000000 000000000000 86dd
    600d51ac 000e 11 40
    00000000000000000000000000000001 00000000000000000000000000000001
    9c40 9c49 000e 0021 636c6f736564
    """
)
UNREACH6 = _hex(
    """
    000000000000 000000000000 86dd
    6008e275 003e 3a 40
    00000000000000000000000000000001 00000000000000000000000000000001
    01 04 ca7a 00000000
    600d51ac 000e 11 40
    00000000000000000000000000000001 00000000000000000000000000000001
    9c40 9c49 000e 0021 636c6f736564
    """
)

# IPv6 with sticky extension headers: hop-by-hop (nh 60, len 0 = 8 bytes, router
# alert option type 5 length 2 value 0, PadN type 1 length 0) then destination
# options (nh 17, len 0, PadN type 1 length 4) then UDP "ext". With extension
# headers the kernel computed the UDP checksum in software: it is complete.
EXT6 = _hex(
    """
    000000000000 000000000000 86dd
    600b3782 001b 00 40
    00000000000000000000000000000001 00000000000000000000000000000001
    3c 00 0502 0000 0100
    11 00 0104 00000000
    9c42 9c41 000b edd9 657874
    """
)

# A 1536-byte UDP payload, FRAG_DATA, sent over lo with MTU 1280, as IPv6 and IPv4
# fragments. Only the headers are kept here; each fragment's data is the matching
# slice of FRAG_DATA (checked at capture time). The UDP checksum in the first
# fragment was computed by the kernel over the whole datagram.
FRAG_DATA = bytes(range(256)) * 6
FRAG6_FIRST_HEADERS = _hex(
    """
    000000000000 000000000000 86dd
    6008621e 04d8 2c 40
    00000000000000000000000000000001 00000000000000000000000000000001
    11 00 0001 ef1d67cb
    9c40 9c41 0608 39dc
    """
)
# fragment header: nh UDP, offset 0, M=1, ident 0xef1d67cb; 1224 data bytes follow.
FRAG6_FIRST = FRAG6_FIRST_HEADERS + FRAG_DATA[:1224]
FRAG6_LAST_HEADERS = _hex(
    """
    000000000000 000000000000 86dd
    6008621e 0140 2c 40
    00000000000000000000000000000001 00000000000000000000000000000001
    11 00 04d0 ef1d67cb
    """
)
# fragment header: offset 0x4d0 >> 3 = 154 units = 1232 bytes, M=0.
FRAG6_LAST = FRAG6_LAST_HEADERS + FRAG_DATA[1224:]

FRAG4_FIRST_HEADERS = _hex(
    """
    000000000000 000000000000 0800
    45 00 04fc 1926 2000 40 11 3ec9 7f000001 7f000001
    9c40 9c41 0608 3bdb
    """
)
# flags 0x2000: MF, offset 0; total 1276 = 20 + 8 + 1248 data bytes.
FRAG4_FIRST = FRAG4_FIRST_HEADERS + FRAG_DATA[:1248]
FRAG4_LAST_HEADERS = _hex(
    """
    000000000000 000000000000 0800
    45 00 0134 1926 009d 40 11 61f4 7f000001 7f000001
    """
)
# flags/offset 0x009d: no MF, offset 157 units = 1256 bytes.
FRAG4_LAST = FRAG4_LAST_HEADERS + FRAG_DATA[1248:]

# ARP over the veth pair: who-has 169.254.7.2 tell 169.254.7.1, and the reply.
ARP_REQUEST = _hex(
    """
    ffffffffffff 02005e000001 0806
    0001 0800 06 04 0001 02005e000001 a9fe0701 000000000000 a9fe0702
    """
)
ARP_REPLY = _hex(
    """
    02005e000001 02005e000002 0806
    0001 0800 06 04 0002 02005e000002 a9fe0702 02005e000001 a9fe0701
    """
)

# UDP "arp me" 169.254.7.1:40000 -> .2:40001 over veth (complete checksum 0x2658)
# and the peer kernel's port unreachable.
VETH_UDP4 = _hex(
    """
    02005e000002 02005e000001 0800
    45 00 0022 573a 4000 40 11 8191 a9fe0701 a9fe0702
    9c40 9c41 000e 2658 617270206d65
    """
)
VETH_UNREACH4 = _hex(
    """
    02005e000001 02005e000002 0800
    45 c0 003e 3bc7 0000 40 01 dc38 a9fe0702 a9fe0701
    03 03 5f1c 00000000
    45 00 0022 573a 4000 40 11 8191 a9fe0701 a9fe0702
    9c40 9c41 000e 2658 617270206d65
    """
)

# Neighbour solicitation for fe80::2 from fe80::1 to the solicited-node group
# ff02::1:ff00:2 (MAC 33:33:ff:00:00:02), hop limit 255, source lladdr option.
NEIGHBOR_SOLICIT = _hex(
    """
    3333ff000002 02005e000001 86dd
    60000000 0020 3a ff
    fe800000000000000000000000000001 ff0200000000000000000001ff000002
    87 00 1c97 00000000
    fe800000000000000000000000000002
    01 01 02005e000001
    """
)
# The solicited advertisement: flags S|O (0x60000000), target lladdr option.
NEIGHBOR_ADVERT = _hex(
    """
    02005e000001 02005e000002 86dd
    60000000 0020 3a ff
    fe800000000000000000000000000002 fe800000000000000000000000000001
    88 00 ba19 60000000
    fe800000000000000000000000000002
    02 01 02005e000002
    """
)
# UDP "ndp me" fe80::1 -> fe80::2 (complete checksum) and the port unreachable.
VETH_UDP6 = _hex(
    """
    02005e000002 02005e000001 86dd
    6005d819 000e 11 40
    fe800000000000000000000000000001 fe800000000000000000000000000002
    9c40 9c41 000e 7e61 6e6470206d65
    """
)
VETH_UNREACH6 = _hex(
    """
    02005e000001 02005e000002 86dd
    600f68a7 003e 3a 40
    fe800000000000000000000000000002 fe800000000000000000000000000001
    01 04 b830 00000000
    6005d819 000e 11 40
    fe800000000000000000000000000001 fe800000000000000000000000000002
    9c40 9c41 000e 7e61 6e6470206d65
    """
)

LOOPBACK4 = bytes((127, 0, 0, 1))
LOOPBACK6 = bytes(15) + b"\x01"
LINK4_A = bytes((169, 254, 7, 1))
LINK4_B = bytes((169, 254, 7, 2))
LINK6_A = bytes.fromhex("fe800000000000000000000000000001")
LINK6_B = bytes.fromhex("fe800000000000000000000000000002")
MAC_A = bytes.fromhex("02005e000001")
MAC_B = bytes.fromhex("02005e000002")
ETH = 14  # Ethernet header length in every capture above (no VLAN tags)

ALL_FRAMES = {
    "UDP4": UDP4,
    "ICMP4_ECHO_REQUEST": ICMP4_ECHO_REQUEST,
    "ICMP4_ECHO_REPLY": ICMP4_ECHO_REPLY,
    "UNREACH4_ORIGINAL": UNREACH4_ORIGINAL,
    "UNREACH4": UNREACH4,
    "OPTS4": OPTS4,
    "UDP6": UDP6,
    "ICMP6_ECHO_REQUEST": ICMP6_ECHO_REQUEST,
    "ICMP6_ECHO_REPLY": ICMP6_ECHO_REPLY,
    "UNREACH6_ORIGINAL": UNREACH6_ORIGINAL,
    "UNREACH6": UNREACH6,
    "EXT6": EXT6,
    "FRAG6_FIRST": FRAG6_FIRST,
    "FRAG6_LAST": FRAG6_LAST,
    "FRAG4_FIRST": FRAG4_FIRST,
    "FRAG4_LAST": FRAG4_LAST,
    "ARP_REQUEST": ARP_REQUEST,
    "ARP_REPLY": ARP_REPLY,
    "VETH_UDP4": VETH_UDP4,
    "VETH_UNREACH4": VETH_UNREACH4,
    "NEIGHBOR_SOLICIT": NEIGHBOR_SOLICIT,
    "NEIGHBOR_ADVERT": NEIGHBOR_ADVERT,
    "VETH_UDP6": VETH_UDP6,
    "VETH_UNREACH6": VETH_UNREACH6,
}
