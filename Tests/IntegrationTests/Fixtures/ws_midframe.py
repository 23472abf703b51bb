"""A WebSocket backend that stops in the middle of a frame, and a raw client through Junction, for
the drain test of the reset case: a close frame cannot go in the middle of a frame, so Junction must
reset the client's connection instead.

Prints "ready PORT" (the backend's port), then reads Junction's port on stdin. The client upgrades
on /websocket; the backend answers 101 and then the header of a 256-byte binary frame with only 10
bytes of its payload. Once the client has those it prints "connected", then waits (up to 30 s) for
the connection to end and prints {"reset": true|false, "after": "<hex of bytes that came after>"}.
"""

import base64
import hashlib
import json
import socket
import sys
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PARTIAL = b"\x82\x7e\x01\x00" + b"A" * 10

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()


def backend():
    while True:
        connection, _ = server.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = connection.recv(4096)
            if not chunk:
                break
            request += chunk
        key = ""
        for line in request.decode(errors="replace").split("\r\n"):
            if line.lower().startswith("sec-websocket-key:"):
                key = line.split(":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        connection.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            + PARTIAL
        )
        threading.Thread(target=lambda c=connection: [None for _ in iter(lambda: c.recv(4096), b"")], daemon=True).start()


threading.Thread(target=backend, daemon=True).start()
print(f"ready {server.getsockname()[1]}", flush=True)
port = int(sys.stdin.readline())

client = socket.create_connection(("127.0.0.1", port), timeout=30)
key = base64.b64encode(b"0123456789abcdef").decode()
client.sendall(
    (
        "GET /websocket HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
)
received = b""
while not (b"\r\n\r\n" in received and received.split(b"\r\n\r\n", 1)[1].startswith(PARTIAL)):
    chunk = client.recv(4096)
    if not chunk:
        print(json.dumps({"error": f"closed before the partial frame: {received!r}"}), flush=True)
        sys.exit(1)
    received += chunk
assert received.startswith(b"HTTP/1.1 101"), received
print("connected", flush=True)

after = received.split(b"\r\n\r\n", 1)[1][len(PARTIAL):]
reset = False
try:
    while True:
        chunk = client.recv(4096)
        if not chunk:
            break
        after += chunk
except ConnectionResetError:
    reset = True
print(json.dumps({"reset": reset, "after": after.hex()}), flush=True)
