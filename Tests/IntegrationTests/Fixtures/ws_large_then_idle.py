"""WebSockets that each move one large DDP message, then sit idle: what a tunnel keeps after a
Rocket.Chat client loaded a long room history.

Usage: ws_large_then_idle.py URL COUNT SIZE
Opens COUNT raw DDP sockets to URL (a few at a time), each sends one `echo` message carrying SIZE
characters and waits for it to come back whole, then prints "ready COUNT" and holds them all until
a line arrives on stdin; then closes them and prints "closed".
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect

URL, COUNT, SIZE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


async def open_one(gate):
    async with gate:
        websocket = await asyncio.wait_for(connect(URL, compression=None, ping_interval=None, max_size=None), 30)
        await asyncio.wait_for(websocket.recv(), 30)  # server_id
        await websocket.send(json.dumps({"msg": "echo", "data": "x" * SIZE}))
        reply = json.loads(await asyncio.wait_for(websocket.recv(), 30))
        if reply.get("msg") != "echo" or len(reply.get("data", "")) != SIZE:
            raise RuntimeError("the echo came back changed")
        return websocket


async def main():
    # A few at a time: what stays behind is measured, not the messages in flight.
    gate = asyncio.Semaphore(4)
    sockets = await asyncio.gather(*(open_one(gate) for _ in range(COUNT)))
    print(f"ready {len(sockets)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(websocket.close() for websocket in sockets))
    print("closed", flush=True)


asyncio.run(main())
