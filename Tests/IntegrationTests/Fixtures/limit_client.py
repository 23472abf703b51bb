"""Clients for the per-client limit tests, each from a source address of its own (127.0.0.2,
127.0.0.3... on loopback) or announced by a PROXY header. Prints one JSON line per command.

  limit_client.py ws SOURCE PORT PATH COUNT
      opens COUNT HTTP/1.1 WebSocket upgrades from SOURCE, one after the other, and prints
      {"statuses": [101, 101, 429], "retry_after": [...]}; then holds the open ones until a line
      (or EOF) on stdin, answers {"closed": n} and exits.
  limit_client.py h2connect SOURCE PORT PATH
      one h2c connection from SOURCE, one RFC 8441 extended CONNECT (:protocol websocket): prints
      {"status": "200"|"429", "retry_after": ..., "fields": {...}}; a 200 is held until a line on
      stdin.
  limit_client.py conns SOURCE PORT COUNT [PROXY_ADDRESS] [glued|apart|bytes]
      opens COUNT connections from SOURCE (with a PROXY v1 header naming PROXY_ADDRESS, sent glued
      to the request, apart from it, or byte by byte), keeps them all open, sends one GET /echo on
      each and prints {"statuses": [200, 200, 0]} (0: closed unanswered); holds them until a line
      on stdin.
  limit_client.py flood FIRST_OCTET COUNT PORT PATH
      one GET from each of COUNT distinct sources 127.FIRST.x.y (16 threads), prints
      {"statuses": {"200": n, ...}, "sources": COUNT}.
"""

import base64
import concurrent.futures
import json
import os
import socket
import sys
import time


def connect(source, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(15)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def status_of(head):
    return int(head.split(" ", 2)[1]) if head else 0


def field(head, name):
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def ws(source, port, path, count):
    statuses, retry, held = [], [], []
    for _ in range(count):
        sock = connect(source, port)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head, _ = read_head(sock)
        statuses.append(status_of(head))
        retry.append(field(head, "retry-after") if head else None)
        if status_of(head) == 101:
            held.append(sock)
        else:
            sock.close()
    print(json.dumps({"statuses": statuses, "retry_after": retry}), flush=True)
    sys.stdin.readline()
    for sock in held:
        sock.close()
    print(json.dumps({"closed": len(held)}), flush=True)


def h2connect(source, port, path):
    import h2.config
    import h2.connection
    import h2.events

    sock = connect(source, port)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    settings_seen = False
    while not settings_seen:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("closed before SETTINGS")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                settings_seen = True
        sock.sendall(conn.data_to_send())
    stream = conn.get_next_available_stream_id()
    conn.send_headers(
        stream,
        [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":path", path),
            (":authority", "chat.example"), ("sec-websocket-version", "13"),
        ],
    )
    sock.sendall(conn.data_to_send())
    fields = None
    while fields is None:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("closed before a response")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                fields = dict(event.headers)
        sock.sendall(conn.data_to_send())
    print(
        json.dumps({"status": fields.get(":status"), "retry_after": fields.get("retry-after"), "fields": fields}),
        flush=True,
    )
    if fields.get(":status") == "200":
        sys.stdin.readline()
    sock.close()


def conns(source, port, count, proxy_address, mode):
    socks = []
    request = b"GET /echo HTTP/1.1\r\nHost: chat.example\r\n\r\n"
    for _ in range(count):
        sock = connect(source, port)
        if proxy_address:
            family = "TCP6" if ":" in proxy_address else "TCP4"
            destination = "::1" if family == "TCP6" else "127.0.0.1"
            header = f"PROXY {family} {proxy_address} {destination} 40000 {port}\r\n".encode()
            if mode == "bytes":
                # One byte per segment, as preface_driver.py cuts them: no Nagle, a pause between.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for byte in header:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.001)
            elif mode == "apart":
                sock.sendall(header)
            socks.append((sock, header if mode == "glued" else b""))
        else:
            socks.append((sock, b""))
    statuses = []
    for sock, glued in socks:
        try:
            sock.sendall(glued + request)
            head, _ = read_head(sock)
            statuses.append(status_of(head))
        except OSError:
            statuses.append(0)
    print(json.dumps({"statuses": statuses}), flush=True)
    sys.stdin.readline()
    for sock, _ in socks:
        sock.close()


def one_request(source, port, path):
    try:
        sock = connect(source, port)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: chat.example\r\nConnection: close\r\n\r\n".encode())
        head, _ = read_head(sock)
        sock.close()
        return status_of(head)
    except OSError:
        return 0


def flood(first, count, port, path):
    sources = [f"127.{first}.{1 + index // 250}.{1 + index % 250}" for index in range(count)]
    statuses = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for status in pool.map(lambda source: one_request(source, port, path), sources):
            statuses[str(status)] = statuses.get(str(status), 0) + 1
    print(json.dumps({"statuses": statuses, "sources": count}), flush=True)


command = sys.argv[1]
if command == "ws":
    ws(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
elif command == "h2connect":
    h2connect(sys.argv[2], int(sys.argv[3]), sys.argv[4])
elif command == "conns":
    conns(
        sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
        sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None,
        sys.argv[6] if len(sys.argv) > 6 else "glued",
    )
elif command == "flood":
    flood(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
else:
    raise SystemExit(f"unknown command {command}")
