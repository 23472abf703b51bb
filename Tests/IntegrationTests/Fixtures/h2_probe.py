"""HTTP/2 misbehaviour on the `h2` library (PyPI), for the Swift tests. Talks h2c to PORT.

  h2_probe.py PORT connection-header   a request carrying `connection: keep-alive` (forbidden by
                                       RFC 9113 8.2.2), then a clean request on the same connection
  h2_probe.py PORT big-headers SIZE    a request whose header list is SIZE bytes
  h2_probe.py PORT rapid-reset COUNT   COUNT streams opened and reset at once (CVE-2023-44487)
  h2_probe.py PORT trailers PATH       a GET of PATH: its status, body and trailer fields
  h2_probe.py PORT goaway SECONDS      a request, then up to SECONDS waiting for the server's GOAWAY
  h2_probe.py PORT headers JSON        a request whose header block is JSON's [[name, value], ...]
                                       (pseudo-headers included, unchecked): its status or reset
  h2_probe.py PORT headers-on-closed|headers-after-reset|bad-ping SECONDS
                                       h2spec 5.1/12, 5.1/9, 5.4.1/1: GOAWAY code, and closed?

Prints one JSON line of what happened.
"""

import json
import socket
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions

port, mode = int(sys.argv[1]), sys.argv[2]
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8", validate_outbound_headers=False, normalize_outbound_headers=False)
conn = h2.connection.H2Connection(config=config)
conn.initiate_connection()
sock.sendall(conn.data_to_send())


def request(extra=(), end=True, path="/echo"):
    stream_id = conn.get_next_available_stream_id()
    headers = [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", f"127.0.0.1:{port}")]
    conn.send_headers(stream_id, headers + list(extra), end_stream=end)
    sock.sendall(conn.data_to_send())
    return stream_id


def outcome(stream_id):
    """Reads until the stream ends or is reset: ("status", code) or ("reset", error code)."""
    while True:
        data = sock.recv(65536)
        if not data:
            return ("closed", None)
        events = conn.receive_data(data)
        sock.sendall(conn.data_to_send())
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                return ("status", int(dict(event.headers)[":status"]))
            if isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                return ("reset", int(event.error_code))
            if isinstance(event, h2.events.ConnectionTerminated):
                return ("goaway", int(event.error_code))


if mode == "connection-header":
    bad = request([("connection", "keep-alive")])
    first = outcome(bad)
    good = request()
    second = outcome(good)
    print(json.dumps({"bad": first, "good": second}))
elif mode == "big-headers":
    # One ordinary request first, so Junction's SETTINGS (its header list size) are acknowledged.
    warmup = outcome(request())
    size = int(sys.argv[3])
    stream = request([("x-big", "a" * size)])
    print(json.dumps({"warmup": warmup, "result": outcome(stream)}))
elif mode == "rapid-reset":
    count = int(sys.argv[3])
    result = None
    try:
        for _ in range(count):
            stream = request(end=False)
            conn.reset_stream(stream)
            sock.sendall(conn.data_to_send())
        sock.settimeout(5)
        while result is None:
            data = sock.recv(65536)
            if not data:
                result = ("closed", None)
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    result = ("goaway", int(event.error_code))
    except (OSError, h2.exceptions.ProtocolError) as error:
        result = ("closed", type(error).__name__)
    print(json.dumps({"result": result}))
elif mode == "trailers":
    stream = request(path=sys.argv[3])
    status, body, trailers, done = None, b"", {}, False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                trailers = dict(event.headers)
            elif isinstance(event, h2.events.StreamEnded):
                done = True
        sock.sendall(conn.data_to_send())
    print(json.dumps({"status": status, "body": body.decode(), "trailers": trailers}))
elif mode == "goaway":
    first = outcome(request())
    print(json.dumps({"ready": first}), flush=True)
    sock.settimeout(float(sys.argv[3]))
    result = None
    try:
        while result is None:
            data = sock.recv(65536)
            if not data:
                result = ("closed", None)
                break
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                # NIO's graceful shutdown sends a PING right behind GOAWAY, which h2 refuses once
                # closed: read the GOAWAY's error code from the raw frames instead.
                offset = 0
                while offset + 9 <= len(data) and result is None:
                    length = int.from_bytes(data[offset:offset + 3], "big")
                    if data[offset + 3] == 0x7:
                        result = ("goaway", int.from_bytes(data[offset + 13:offset + 17], "big"))
                    offset += 9 + length
                result = result or ("protocol-error", None)
                break
            for event in events:
                if isinstance(event, h2.events.ConnectionTerminated):
                    result = ("goaway", int(event.error_code))
    except OSError as error:
        result = ("error", type(error).__name__)
    print(json.dumps({"result": result}), flush=True)
elif mode in ("headers-on-closed", "headers-after-reset", "bad-ping"):
    # h2spec 5.1/12, 5.1/9 and 5.4.1/1: connection errors. Junction must answer GOAWAY and close
    # the TCP connection within `seconds`.
    seconds = float(sys.argv[3])
    first = outcome(request())
    if mode == "headers-on-closed":
        stream = 1  # closed: both sides ended it
    elif mode == "headers-after-reset":
        stream = request(end=False)
        conn.reset_stream(stream)
        sock.sendall(conn.data_to_send())
    if mode == "bad-ping":
        frame = bytes([0, 0, 6, 0x6, 0, 0, 0, 0, 0]) + b"abcdef"
    else:
        block = conn.encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/echo"),
                                     (":authority", f"127.0.0.1:{port}")])
        frame = len(block).to_bytes(3, "big") + bytes([0x1, 0x5]) + stream.to_bytes(4, "big") + block
    sock.sendall(frame)
    sock.settimeout(seconds)
    goaway, closed, raw = None, False, b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            raw += data
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    offset = 0
    while offset + 9 <= len(raw):
        length = int.from_bytes(raw[offset:offset + 3], "big")
        if raw[offset + 3] == 0x7 and offset + 17 <= len(raw):
            goaway = int.from_bytes(raw[offset + 13:offset + 17], "big")
        offset += 9 + length
    print(json.dumps({"first": first, "goaway": goaway, "closed": closed}))
elif mode == "headers":
    fields = [tuple(pair) for pair in json.loads(sys.argv[3])]
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, fields, end_stream=True)
    sock.sendall(conn.data_to_send())
    print(json.dumps({"result": outcome(stream_id)}))
