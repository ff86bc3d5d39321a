#!/usr/bin/env python3
"""notify_listen.py SOCKET OUT - a stand-in for systemd's notify socket.

Binds a datagram socket at SOCKET and appends every message it receives, one
line per assignment (READY=1, STATUS=..., WATCHDOG=1), to OUT.  Stops on SIGTERM.
"""
import os
import signal
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with open(out, "a", buffering=1) as f:
    while True:
        data = s.recv(4096).decode(errors="replace")
        for line in data.splitlines():
            f.write(line + "\n")
