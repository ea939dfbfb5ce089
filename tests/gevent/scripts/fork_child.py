"""fork() under gevent: the child uses a multisock connection it inherited (served by the
parent through multisock.api.forking) while the parent's hub keeps running greenlets."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.setup()

import socket  # noqa: E402

import gevent  # noqa: E402

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
client = socket.create_connection(listener.getsockname())
conn, _ = listener.accept()
ticker = common.Ticker(0.01)
pid = os.fork()
if pid == 0:
    try:
        time.sleep(2.5)  # busy elsewhere: the parent's fork server must not hold the hub
        data = conn.recv(100)  # forwarded to the parent, which waits for the client's bytes
        conn.sendall(b"child got " + data)
        conn.close()
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - reported through the exit code
        print("CHILD", repr(exc), flush=True)
        os._exit(1)
conn.close()  # the child still holds it
gevent.sleep(3.0)  # the child sleeps, then waits in recv: the parent's hub keeps ticking
ticks_while_child_waits = ticker.ticks
client.sendall(b"hello")
client.settimeout(20)
reply = client.recv(100)
_, status = os.waitpid(pid, 0)
ticker.stop()
client.close()
listener.close()
common.report(reply=reply.decode(), child_status=status, ticks=ticks_while_child_waits,
              max_gap=round(ticker.max_gap, 4))
