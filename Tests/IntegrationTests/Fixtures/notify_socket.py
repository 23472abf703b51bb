"""systemd's side of sd_notify: an AF_UNIX datagram socket at <path> that prints, for each datagram
it receives, one JSON line {"pid": <sender pid>, "message": "<text>"} (the sender's pid from
SCM_CREDENTIALS, as systemd reads it).

  notify_socket.py <path>

Prints "ready" once bound. Ends when stdin closes.
"""

import json
import os
import socket
import struct
import sys
import threading

path = sys.argv[1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
server.bind(path)
print("ready", flush=True)


def receive():
    size = struct.calcsize("3i")
    while True:
        data, ancillary, _, _ = server.recvmsg(4096, socket.CMSG_SPACE(size))
        pid = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload[:size])[0]
        print(json.dumps({"pid": pid, "message": data.decode()}), flush=True)


threading.Thread(target=receive, daemon=True).start()
sys.stdin.read()
os.unlink(path)
