"""Sends a connection preface and the bytes behind it, cut into TCP segments on purpose.

  preface_driver.py PORT PREFACE SPLIT [CAFILE]

PREFACE  proxy-v1 | proxy-v2       PROXY header, then an HTTP/1.1 POST (plain listener)
         tls                       TLS handshake, then the POST inside TLS
         proxy-v1-tls | proxy-v2-tls
                                   PROXY header glued to the ClientHello, then the POST inside TLS
         tls-h2                    TLS with ALPN h2, then the HTTP/2 preface and a POST
         h2c                       HTTP/2 prior knowledge: preface, SETTINGS, HEADERS, DATA
         http1-h2                  an HTTP/1.1 POST on a plain listener with `http2: true`
SPLIT    glued     each flight in one segment (the preface and what follows together)
         apart     the preface, a pause, then what follows
         bytewise  one byte per segment (TCP_NODELAY, a short pause between bytes)

The pauses are the stimulus (how TCP cuts the stream), not a wait for the server. Prints one JSON
line: the status, the protocol, and what the backend's /echo saw (body, X-Forwarded-For).
"""

import json
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events

port, preface, split = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cafile = sys.argv[4] if len(sys.argv) > 4 else None
BODY = b'{"msg":"hello through the preface"}'
CLIENT = "203.0.113.7"
REQUEST = (
    b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    + b"Content-Length: " + str(len(BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + BODY
)

sock = socket.create_connection(("127.0.0.1", port), timeout=10)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def send(first, rest=b""):
    """Sends `first` (a preface) and `rest` (what follows it) as SPLIT says."""
    if split == "glued":
        sock.sendall(first + rest)
    elif split == "apart":
        sock.sendall(first)
        if rest:
            time.sleep(0.1)
            sock.sendall(rest)
    else:
        for byte in first + rest:
            sock.sendall(bytes([byte]))
            time.sleep(0.001)


def proxy_header(version):
    if version == "v1":
        return f"PROXY TCP4 {CLIENT} 10.0.0.1 40000 443\r\n".encode()
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    addresses = socket.inet_aton(CLIENT) + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 40000, 443)
    return signature + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def read_http1(receive):
    """Reads one HTTP/1.1 response (Content-Length framed) with `receive`; returns (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = receive()
        if not chunk:
            raise SystemExit(json.dumps({"error": "closed before a response", "got": data.decode("latin-1")}))
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = receive()
        if not chunk:
            break
        body += chunk
    return int(lines[0].split(" ")[1]), body[:length]


def report(status, protocol, body):
    echo = json.loads(body)
    headers = {name.lower(): value for name, value in echo.get("headers", [])}
    print(json.dumps({
        "status": status, "protocol": protocol, "body": echo.get("body"),
        "xff": headers.get("x-forwarded-for"), "method": echo.get("method"),
    }))


class TLS:
    """A TLS client on memory BIOs, so that its records can be cut and glued at will."""

    def __init__(self, alpn):
        context = ssl.create_default_context(cafile=cafile)
        context.set_alpn_protocols(alpn)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def step(self):
        try:
            self.tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    def handshake(self, prefix):
        """The ClientHello (behind `prefix`) and the server's answer; returns the client's last flight."""
        self.step()
        send(prefix, self.outgoing.read()) if prefix else send(self.outgoing.read())
        while not self.step():
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit(json.dumps({"error": "closed during the TLS handshake"}))
            self.incoming.write(chunk)
        return self.outgoing.read()

    def receive(self):
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                chunk = sock.recv(65536)
                if not chunk:
                    return b""
                self.incoming.write(chunk)
            except ssl.SSLZeroReturnError:
                return b""

    def seal(self, data):
        self.tls.write(data)
        return self.outgoing.read()


def h2_exchange(transmit, receive, first_flight):
    """A POST over HTTP/2; `first_flight(bytes)` sends the preface flight, `transmit` the rest."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [
        (":method", "POST"), (":scheme", "https" if "tls" in preface else "http"), (":path", "/echo"),
        (":authority", "localhost"), ("content-type", "application/json"), ("content-length", str(len(BODY))),
    ])
    conn.send_data(stream, BODY, end_stream=True)
    first_flight(conn.data_to_send())
    status, body = None, b""
    while True:
        chunk = receive()
        if not chunk:
            break
        for event in conn.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                report(status, "h2", body)
                return
        pending = conn.data_to_send()
        if pending:
            transmit(pending)
    raise SystemExit(json.dumps({"error": "closed before the response ended", "status": status}))


if preface in ("proxy-v1", "proxy-v2"):
    send(proxy_header(preface[-2:]), REQUEST)
    status, body = read_http1(lambda: sock.recv(65536))
    report(status, "http/1.1", body)
elif preface in ("tls", "proxy-v1-tls", "proxy-v2-tls"):
    tls = TLS(["http/1.1"])
    prefix = proxy_header(preface[6:8]) if preface.startswith("proxy") else b""
    finished = tls.handshake(prefix)
    # The client's Finished and the request behind it: the next TLS records glued to the handshake.
    send(finished, tls.seal(REQUEST))
    status, body = read_http1(tls.receive)
    report(status, "http/1.1", body)
elif preface == "tls-h2":
    tls = TLS(["h2"])
    finished = tls.handshake(b"")
    h2_exchange(lambda data: sock.sendall(tls.seal(data)), tls.receive, lambda data: send(finished, tls.seal(data)))
elif preface == "h2c":
    magic = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    h2_exchange(
        sock.sendall,
        lambda: sock.recv(65536),
        lambda data: send(data[: len(magic)], data[len(magic):]),
    )
elif preface == "http1-h2":
    # "P" could still start the HTTP/2 preface ("PRI"): the sniffer must hold it and decide at "O".
    send(REQUEST[:1], REQUEST[1:])
    status, body = read_http1(lambda: sock.recv(65536))
    report(status, "http/1.1", body)
else:
    raise SystemExit(f"unknown preface {preface}")
