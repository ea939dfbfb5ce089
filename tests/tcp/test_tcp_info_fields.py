"""``stack.tcp.info``'s snapshot reads a control block's fields one by one, in the order
BLOCK_FIELDS names and info_from/row_from unpack: the two must not drift apart."""

from __future__ import annotations

import operator
import socket

import multisock
from multisock.stack.tcp import info


def test_the_snapshot_reads_block_fields_in_their_named_order() -> None:
    with multisock.Network(seed=5) as net:
        a = net.add_host("a", "10.0.0.1/24")
        b = net.add_host("b", "10.0.0.2/24")
        net.link(a, b, loss=0.0)
        listener = b.socket()
        listener.bind(("10.0.0.2", 0))
        listener.listen()
        client = a.socket()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.connect(("10.0.0.2", listener.getsockname()[1]))
        server, _ = listener.accept()
        client.sendall(b"x" * 5000)
        assert server.recv(100)
        for sock in (client, server):
            tcb = sock._sock.tcb
            by_name = operator.attrgetter(*info.BLOCK_FIELDS)(tcb)
            assert info._block(tcb) == by_name
            # distinct values where the order could swap them unnoticed
            assert by_name[info.BLOCK_FIELDS.index("bytes_sent")] != by_name[
                info.BLOCK_FIELDS.index("bytes_received")]
        assert info.BLOCK_FIELDS[info._LOCAL] == "local"
        assert info.BLOCK_FIELDS[info._SNDQ] == "sndq.size"
        assert info.BLOCK_FIELDS[info._RECVQ] == "recvq.size"
        for s in (client, server, listener):
            s.close()
