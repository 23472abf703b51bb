"""Holds one HTTPS keep-alive connection across a certificate reload, for the Swift tests.

Connects (ALPN http/1.1, no certificate check: the point is which certificate is served), makes
a request, prints `<sha256 of the server certificate> <status>`, waits for a line on stdin, makes
a second request on the same connection and prints its status.

Usage: tls_keepalive.py PORT PATH
"""

import hashlib
import socket
import ssl
import sys

port, path = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
context.set_alpn_protocols(["http/1.1"])
sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
reader = sock.makefile("rb")


def get():
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    status = reader.readline().decode().split(" ")[1]
    length = 0
    while True:
        line = reader.readline().decode().strip()
        if not line:
            break
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    reader.read(length)
    return status


first = get()
print(hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest(), first, flush=True)
sys.stdin.readline()
print(get(), flush=True)
