"""A stand-in for Rocket.Chat's ddp-streamer, built on the real `websockets` library.

GET /health answers 200 "ok"; any other plain GET answers the SockJS info JSON; a WebSocket
upgrade on exactly /websocket speaks raw DDP, on any other path SockJS-framed DDP (like
ddp-streamer's `req.url !== '/websocket'`). Every DDP session answers `connect` with
`connected`, echoes `ping` as `pong`, and answers `{"msg":"whoami"}` with the backend name, the
request target it saw and the X-Forwarded-For it got, so tests can see where a tunnel landed.
`{"msg":"reset"}` makes it reset the TCP connection (RST, no close frame).

Usage: ddp_backend.py PORT NAME   (PORT 0 picks a free port; "ready PORT" is printed once serving)
"""

import asyncio
import http
import json
import socket
import struct
import sys

from websockets.asyncio.server import serve
from websockets.http11 import Response
from websockets.datastructures import Headers

PORT = int(sys.argv[1])
NAME = sys.argv[2]


def process_request(connection, request):
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    if request.path == "/health":
        return connection.respond(http.HTTPStatus.OK, "ok")
    body = json.dumps({"websocket": True, "origins": ["*:*"], "cookie_needed": False, "entropy": 1, "backend": NAME})
    return Response(200, "OK", Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))]), body.encode())


async def session(websocket):
    target = websocket.request.path
    raw = target == "/websocket"
    forwarded = websocket.request.headers.get("X-Forwarded-For", "")

    async def send(message):
        text = json.dumps(message)
        await websocket.send(text if raw else "a" + json.dumps([text]))

    if not raw:
        await websocket.send("o")
    await send({"msg": "server_id", "server_id": "0"})
    async for frame in websocket:
        texts = [frame] if raw else json.loads(frame)
        for text in texts:
            message = json.loads(text)
            kind = message.get("msg")
            if kind == "connect":
                await send({"msg": "connected", "session": NAME + "-session"})
            elif kind == "ping":
                await send({"msg": "pong", **({"id": message["id"]} if "id" in message else {})})
            elif kind == "whoami":
                await send({"msg": "whoami", "backend": NAME, "target": target, "xff": forwarded})
            elif kind == "echo":
                await send(message)
            elif kind == "reset":
                # SO_LINGER 0: closing sends RST instead of FIN.
                sock = websocket.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                websocket.transport.abort()
                return


async def main():
    async with serve(session, "127.0.0.1", PORT, process_request=process_request, max_size=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"ready {port}", flush=True)
        await asyncio.Future()


asyncio.run(main())
