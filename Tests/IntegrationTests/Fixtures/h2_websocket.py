"""An RFC 8441 WebSocket client on the `h2` library (PyPI), run by the Swift tests.

Connects to Junction over TLS (ALPN h2) or h2c, checks that the server's SETTINGS carry
SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, opens an extended CONNECT stream (:protocol websocket) to
PATH, then speaks DDP inside it: the server_id greeting, connect -> connected, whoami, and a
large echo. Prints one JSON line with what it saw; exits non-zero on any failure.

With --wait-close it then prints {"ready": true, "backend": ...} and waits (up to 30 s) for the
server to end the WebSocket, printing what came: the close frame's code, whether the stream then
ended (END_STREAM) or was reset.

Usage: h2_websocket.py HOST PORT PATH [--tls CAFILE] [--wait-close]
"""

import json
import os
import socket
import ssl
import struct
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cafile = sys.argv[sys.argv.index("--tls") + 1] if "--tls" in sys.argv else None
wait_close = "--wait-close" in sys.argv

sock = socket.create_connection(("127.0.0.1", port), timeout=15)
if cafile:
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(sock, server_hostname=host)
    assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()

conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
conn.initiate_connection()
sock.sendall(conn.data_to_send())

result = {"connect_protocol_setting": None}
stream_id = None
buffer = b""
status = None
ended = False


def pump():
    """Reads one chunk from the socket and handles its events."""
    global buffer, status, ended
    data = sock.recv(65536)
    if not data:
        raise RuntimeError("connection closed by Junction")
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            setting = event.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
            if setting is not None:
                result["connect_protocol_setting"] = setting.new_value
        elif isinstance(event, h2.events.ResponseReceived):
            status = dict(event.headers).get(":status")
            result["response_headers"] = dict(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            buffer += event.data
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            ended = True
        elif isinstance(event, h2.events.StreamReset):
            result["reset"] = int(event.error_code)
            raise RuntimeError(f"stream reset: {event.error_code}")
        elif isinstance(event, h2.events.ConnectionTerminated):
            result.setdefault("goaways", []).append(
                {"last_stream_id": event.last_stream_id, "error_code": int(event.error_code)}
            )
            # python-h2 closes its connection on any GOAWAY; RFC 9113 6.8 lets the streams the
            # GOAWAY still covers finish (a graceful shutdown's DATA and END_STREAM follow), so
            # the client stays open to read them, as browsers and nghttp2 do.
            if event.error_code == 0 and stream_id is not None and stream_id <= event.last_stream_id:
                conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
    sock.sendall(conn.data_to_send())


# The server's SETTINGS arrive first.
while result["connect_protocol_setting"] is None:
    pump()
if result["connect_protocol_setting"] != 1:
    raise SystemExit(json.dumps({"ok": False, **result}))

stream_id = conn.get_next_available_stream_id()
conn.send_headers(
    stream_id,
    [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https" if cafile else "http"),
        (":path", path),
        (":authority", f"{host}:{port}"),
        ("sec-websocket-version", "13"),
        ("x-request-id", "rfc8441-test"),
    ],
)
sock.sendall(conn.data_to_send())
while status is None:
    pump()
result["status"] = status
if status != "200":
    print(json.dumps({"ok": False, **result}))
    sys.exit(1)

raw = path == "/websocket"


def send_frame(text):
    """A masked WebSocket text frame (RFC 6455 5.2), inside DATA frames."""
    payload = text.encode()
    mask = os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    elif len(payload) < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    data = header + mask + masked
    while data:
        window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
        if window == 0:
            pump()
            continue
        conn.send_data(stream_id, data[:window])
        data = data[window:]
        sock.sendall(conn.data_to_send())


def receive_frame():
    """The next (unmasked) server frame's text."""
    global buffer
    while True:
        if len(buffer) >= 2:
            length = buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) >= 4:
                    length = struct.unpack("!H", buffer[2:4])[0]
                    offset = 4
                else:
                    length = None
            elif length == 127:
                if len(buffer) >= 10:
                    length = struct.unpack("!Q", buffer[2:10])[0]
                    offset = 10
                else:
                    length = None
            if length is not None and len(buffer) >= offset + length:
                text = buffer[offset : offset + length].decode()
                buffer = buffer[offset + length :]
                return text
        pump()


def send_ddp(message):
    text = json.dumps(message)
    send_frame(text if raw else json.dumps([text]))


def receive_ddp():
    while True:
        text = receive_frame()
        if raw:
            return json.loads(text)
        if text.startswith("a"):
            return json.loads(json.loads(text[1:])[0])


greeting = receive_ddp()
send_ddp({"msg": "connect", "version": "1", "support": ["1"]})
connected = receive_ddp()
send_ddp({"msg": "whoami"})
who = receive_ddp()
payload = "y" * 200_000
send_ddp({"msg": "echo", "payload": payload})
echo = receive_ddp()


def wait_for_close():
    """Waits for the server's close frame; returns its code (None if the stream ended without)."""
    global buffer
    sock.settimeout(30)
    while True:
        if len(buffer) >= 2 and buffer[0] & 0x0F == 0x8:
            length = buffer[1] & 0x7F
            if len(buffer) >= 2 + length:
                return struct.unpack("!H", buffer[2:4])[0] if length >= 2 else None
        elif len(buffer) >= 2:
            receive_frame()
            continue
        if ended:
            return None
        pump()


if wait_close:
    print(json.dumps({"ready": True, "backend": who.get("backend")}), flush=True)
    try:
        result["close_code"] = wait_for_close()
        # The client answers the close (a masked close frame) and ends its half, as browsers do.
        mask = os.urandom(4)
        payload = struct.pack("!H", 1001)
        send = bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        conn.send_data(stream_id, send, end_stream=True)
        sock.sendall(conn.data_to_send())
        while not ended:
            pump()
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
    result["ended"] = ended
    print(json.dumps(result))
    sys.exit(0)
conn.end_stream(stream_id)
sock.sendall(conn.data_to_send())
result.update(
    ok=greeting.get("msg") == "server_id" and connected.get("msg") == "connected" and echo.get("payload") == payload,
    session=connected.get("session"),
    backend=who.get("backend"),
    target=who.get("target"),
    xff=who.get("xff"),
)
print(json.dumps(result))
sys.exit(0 if result["ok"] else 1)
