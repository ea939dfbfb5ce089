"""Run by ``python -m multisock run --gevent``: a plain gevent program (no multisock import)."""

import socket
import time

import gevent
import gevent.server
import gevent.socket


def echo(sock, address):
    data = sock.recv(100)
    gevent.sleep(0.2)
    sock.sendall(data)


server = gevent.server.StreamServer(("127.0.0.1", 0), echo)
server.start()


def ask(i):
    with gevent.socket.create_connection(server.address) as s:
        s.sendall(b"%d" % i)
        return s.recv(100)


t0 = time.monotonic()
jobs = [gevent.spawn(ask, i) for i in range(20)]
gevent.joinall(jobs, timeout=30)
print("CLASS", socket.socket.__module__, type(server.socket).__module__)
print("ANSWERS", sum(1 for i, g in enumerate(jobs) if g.value == b"%d" % i))
print("CONCURRENT", time.monotonic() - t0 < 20 * 0.2 / 2)
