"""Many WebSocket clients at once on the real `websockets` library, like browsers of a Rocket.Chat
deployment: each opens raw DDP on a URL, asks which backend it reached, then waits; when the proxy
closes it, it records how (the close code it received, or none for a reset) and, if asked to,
reconnects at once, as Rocket.Chat's client does.

Reads one JSON command per line on stdin, answers one JSON line on stdout:

  {"cmd": "open", "url": "ws://127.0.0.1:8080/websocket", "count": 20, "reconnect": true}
      opens `count` clients; answers once all are connected: {"ok", "backends": {name: n}}
  {"cmd": "status"}
      {"open": {backend: n}, "connecting": n, "closes": [{"backend", "code", "time", "client"}]}
      (time: seconds on a monotonic clock, comparable between closes; client: the client's number,
      in the order the clients were opened, from 0)
  {"cmd": "quit"}
"""

import asyncio
import json
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

clients = []
closes = []
tasks = []


class Client:
    def __init__(self, number):
        self.number = number
        self.backend = None
        self.websocket = None
        self.connected = asyncio.Event()


async def handshake(websocket):
    async def receive():
        return json.loads(await asyncio.wait_for(websocket.recv(), timeout=15))

    first = await receive()
    assert first.get("msg") == "server_id", first
    await websocket.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
    assert (await receive()).get("msg") == "connected"
    await websocket.send(json.dumps({"msg": "whoami"}))
    return (await receive())["backend"]


async def run_client(client, url, reconnect):
    while True:
        try:
            websocket = await connect(url, max_size=None, ping_interval=None, open_timeout=15, close_timeout=2)
            client.websocket = websocket
            client.backend = await handshake(websocket)
        except Exception as error:  # a refused or failed connect: try again shortly
            print(json.dumps({"log": f"connect failed: {error}"}), file=sys.stderr, flush=True)
            client.backend = None
            await asyncio.sleep(0.2)
            continue
        client.connected.set()
        code = None
        try:
            async for _ in websocket:
                pass
        except ConnectionClosed:
            pass
        if websocket.close_code is not None and websocket.protocol.close_rcvd is not None:
            code = websocket.protocol.close_rcvd.code
        closes.append({"backend": client.backend, "code": code, "time": time.monotonic(), "client": client.number})
        client.backend = None
        if not reconnect:
            return
        await asyncio.sleep(0.02)


async def open_clients(command):
    new = [Client(len(clients) + index) for index in range(command["count"])]
    clients.extend(new)
    for client in new:
        tasks.append(asyncio.create_task(run_client(client, command["url"], command.get("reconnect", False))))
    await asyncio.wait_for(asyncio.gather(*(client.connected.wait() for client in new)), timeout=60)
    counts = {}
    for client in new:
        counts[client.backend] = counts.get(client.backend, 0) + 1
    return {"ok": True, "backends": counts}


async def status(command):
    counts = {}
    connecting = 0
    for client in clients:
        if client.backend is None:
            connecting += 1
        else:
            counts[client.backend] = counts.get(client.backend, 0) + 1
    return {"ok": True, "open": counts, "connecting": connecting, "closes": closes}


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
            result = await {"open": open_clients, "status": status}[command["cmd"]](command)
        except Exception as error:  # reported to the test, which fails with the message
            result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(result), flush=True)
    for task in tasks:
        task.cancel()


asyncio.run(main())
