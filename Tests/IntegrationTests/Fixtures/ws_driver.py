"""A WebSocket client built on the real `websockets` library, driven by the Swift tests.

Reads one JSON command per line on stdin and answers one JSON line on stdout:

  {"cmd": "open", "id": "a", "url": "ws://127.0.0.1:8080/websocket", "cafile": null}
      opens a WebSocket, runs the DDP handshake (connect -> connected) and asks the backend who it
      is; answers {"id", "ok", "backend", "session", "target", "xff"}
  {"cmd": "echo", "id": "a", "size": 100000}
      sends a DDP message carrying `size` bytes and checks it comes back intact
  {"cmd": "close", "id": "a"}
  {"cmd": "reset", "id": "a", "by": "client"}
      resets the TCP connection (RST, no close frame): the client's own ("by": "client"), or the
      backend's ("by": "backend", the DDP backend does it when asked); answers once it is gone
  {"cmd": "quit"}

SockJS paths (anything but exactly /websocket) get SockJS framing, as ddp-streamer does.
"""

import asyncio
import base64
import json
import os
import socket
import ssl
import struct
import sys
from urllib.parse import urlsplit

from websockets.asyncio.client import connect

sessions = {}


class Session:
    def __init__(self, websocket, raw):
        self.websocket = websocket
        self.raw = raw

    async def send(self, message):
        text = json.dumps(message)
        await self.websocket.send(text if self.raw else json.dumps([text]))

    async def receive(self):
        while True:
            frame = await asyncio.wait_for(self.websocket.recv(), timeout=15)
            if self.raw:
                return json.loads(frame)
            if frame.startswith("a"):
                return json.loads(json.loads(frame[1:])[0])
            # "o" (open) and "h" (heartbeat) frames carry no message.


async def open_session(command):
    url = command["url"]
    context = None
    if url.startswith("wss://"):
        context = ssl.create_default_context(cafile=command.get("cafile"))
    websocket = await connect(url, ssl=context, max_size=None, ping_interval=None, open_timeout=15)
    parts = urlsplit(url)
    target = parts.path + ("?" + parts.query if parts.query else "")
    # ddp-streamer serves raw DDP only when the request target is exactly /websocket.
    session = Session(websocket, target == "/websocket")
    first = await session.receive()
    assert first.get("msg") == "server_id", first
    await session.send({"msg": "connect", "version": "1", "support": ["1", "pre2", "pre1"]})
    connected = await session.receive()
    assert connected.get("msg") == "connected", connected
    await session.send({"msg": "whoami"})
    who = await session.receive()
    sessions[command["id"]] = session
    return {"ok": True, "session": connected["session"], "backend": who["backend"], "target": who["target"], "xff": who["xff"]}


async def echo(command):
    session = sessions[command["id"]]
    # Random text: permessage-deflate must not shrink it, so byte counts on the way are real.
    payload = base64.b64encode(os.urandom(command["size"]))[: command["size"]].decode()
    await session.send({"msg": "echo", "payload": payload})
    reply = await session.receive()
    return {"ok": reply.get("payload") == payload, "size": len(reply.get("payload", ""))}


async def close(command):
    session = sessions.pop(command["id"])
    await session.websocket.close()
    return {"ok": True}


async def reset(command):
    session = sessions.pop(command["id"])
    if command["by"] == "backend":
        await session.send({"msg": "reset"})
        await asyncio.wait_for(session.websocket.wait_closed(), timeout=15)
    else:
        # SO_LINGER 0: closing sends RST instead of FIN.
        sock = session.websocket.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        session.websocket.transport.abort()
    return {"ok": True}


async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "quit":
            break
        try:
            handler = {"open": open_session, "echo": echo, "close": close, "reset": reset}[command["cmd"]]
            result = await handler(command)
        except Exception as error:  # reported to the test, which fails with the message
            result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        result["id"] = command.get("id")
        print(json.dumps(result), flush=True)
    for session in list(sessions.values()):
        await session.websocket.close()


asyncio.run(main())
