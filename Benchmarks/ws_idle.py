"""Idle WebSockets for Benchmarks/run.sh, with the `websockets` library (pip install websockets).

  ws_idle.py serve PORT       a WebSocket echo backend on 127.0.0.1:PORT (any path); prints "ready"
  ws_idle.py hold URL N       opens N WebSockets to URL, each exchanging one message, prints
                              "ready N" once all are open, holds them until a line arrives on stdin,
                              then closes them all and prints "closed"; a wss:// URL is TLS with
                              ALPN http/1.1 and no certificate check (the benchmark's own self-signed one)

Compression is off on both ends: the proxy in between only sees bytes either way.
"""

import asyncio
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def run_server(port):
    async with serve(echo, "127.0.0.1", port, compression=None, max_queue=4, ping_interval=None):
        print("ready", flush=True)
        await asyncio.get_running_loop().create_future()


def client_tls():
    """TLS for a wss:// holder: ALPN http/1.1, the benchmark's self-signed certificate unchecked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


async def open_one(url, gate, options):
    async with gate:
        websocket = await asyncio.wait_for(
            connect(url, compression=None, ping_interval=None, **options), 30
        )
        await websocket.send("hello")
        reply = await asyncio.wait_for(websocket.recv(), 30)
        if reply != "hello":
            raise RuntimeError(f"unexpected echo {reply!r}")
        return websocket


async def run_holder(url, count):
    gate = asyncio.Semaphore(100)
    options = {"ssl": client_tls()} if url.startswith("wss://") else {}
    sockets = await asyncio.gather(*(open_one(url, gate, options) for _ in range(count)))
    print(f"ready {len(sockets)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(websocket.close() for websocket in sockets))
    print("closed", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(run_server(int(sys.argv[2])))
    elif sys.argv[1:2] == ["hold"]:
        asyncio.run(run_holder(sys.argv[2], int(sys.argv[3])))
    else:
        sys.exit(__doc__)
