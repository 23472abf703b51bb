"""A client that goes idle in one phase of its connection and measures when Junction closes it.

  idle_client.py PORT SCENARIO [CAFILE]

SCENARIO  tcp               connect and send nothing (clock from connect)
          tls               TLS handshake (ALPN http/1.1), then nothing (clock from connect)
          h2-preface        h2c preface and SETTINGS, no stream (clock from connect)
          h2-after-request  one h2c request answered, then idle; PINGs are acknowledged (clock from
                            the end of the response)
          h2-ping-unacked   one h2c request answered, then idle; nothing is ever sent again, so the
                            PING behind Junction's GOAWAY is never acknowledged (clock as above)

Prints one JSON line: whether the connection was closed, after how many seconds, and whether a
GOAWAY and a PING came first.
"""

import json
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

port, scenario = int(sys.argv[1]), sys.argv[2]
cafile = sys.argv[3] if len(sys.argv) > 3 else None
LIMIT = 20

sock = socket.create_connection(("127.0.0.1", port), timeout=LIMIT)
started = time.monotonic()
result = {"scenario": scenario, "goaway": False, "ping": False, "closed": False}


def wait_for_close(receive, on_data=lambda data: None):
    """Reads until EOF (or a reset): the connection is closed."""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        try:
            data = receive()
        except (ConnectionResetError, ssl.SSLError, ssl.SSLEOFError):
            data = b""
        except socket.timeout:
            break
        if not data:
            result["closed"] = True
            break
        on_data(data)
    result["seconds"] = round(time.monotonic() - started, 3)


if scenario == "tcp":
    wait_for_close(lambda: sock.recv(65536))
elif scenario == "tls":
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["http/1.1"])
    tls = context.wrap_socket(sock, server_hostname="localhost")
    wait_for_close(lambda: tls.recv(65536))
else:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    acknowledge = scenario != "h2-ping-unacked"

    buffered = bytearray()

    def frames(data):
        """Junction's frames once idle, read raw: h2 refuses the PING that follows a GOAWAY."""
        buffered.extend(data)
        while len(buffered) >= 9:
            length = int.from_bytes(buffered[0:3], "big")
            if len(buffered) < 9 + length:
                return
            kind, flags, payload = buffered[3], buffered[4], bytes(buffered[9:9 + length])
            del buffered[:9 + length]
            if kind == 0x7:
                result["goaway"] = True
                result["goaway_error"] = int.from_bytes(payload[4:8], "big")
            elif kind == 0x6 and not flags & 0x1:
                result["ping"] = True
                if acknowledge:
                    sock.sendall(bytes([0, 0, 8, 0x6, 0x1, 0, 0, 0, 0]) + payload)

    if scenario != "h2-preface":
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, [(":method", "GET"), (":scheme", "http"), (":path", "/echo"),
                                   (":authority", "localhost")], end_stream=True)
        sock.sendall(conn.data_to_send())
        ended = False
        while not ended:
            data = sock.recv(65536)
            if not data:
                raise SystemExit(json.dumps({"error": "closed before the response"}))
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
        started = time.monotonic()
    else:
        # The server's SETTINGS, acknowledged: the connection is set up, and then idle.
        conn.receive_data(sock.recv(65536))
        sock.sendall(conn.data_to_send())
    wait_for_close(lambda: sock.recv(65536), frames)

print(json.dumps(result), flush=True)
