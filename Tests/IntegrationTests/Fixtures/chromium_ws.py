"""Loads a page through Junction in headless Chromium (Debian's `chromium`) and reports, from the
DevTools protocol, how the page and its WebSocket travelled.

The page (served by the test's monolith backend) opens `wss://<host>/websocket`, runs the DDP
handshake and puts the outcome in document.title. Over HTTP/2 a WebSocket (RFC 8441) completes
its handshake with status 200, where an HTTP/1.1 upgrade shows 101: that is how the test tells
the WebSocket ran inside the HTTP/2 connection.

Usage: chromium_ws.py URL     Prints one JSON line: page_protocol, ws_status, title.
"""

import asyncio
import json
import re
import subprocess
import sys
import tempfile

from websockets.asyncio.client import connect

URL = sys.argv[1]


async def main():
    profile = tempfile.mkdtemp(prefix="junction-chromium-")
    browser = subprocess.Popen(
        [
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--ignore-certificate-errors",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        devtools = None
        for _ in range(200):
            line = await asyncio.get_running_loop().run_in_executor(None, browser.stderr.readline)
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                devtools = match.group(1)
                break
        if devtools is None:
            raise RuntimeError("chromium did not print its DevTools address")
        async with connect(devtools, max_size=None) as cdp:
            next_id = 0
            events = []

            async def call(method, params=None, session=None):
                nonlocal next_id
                next_id += 1
                message = {"id": next_id, "method": method, "params": params or {}}
                if session:
                    message["sessionId"] = session
                await cdp.send(json.dumps(message))
                while True:
                    reply = json.loads(await asyncio.wait_for(cdp.recv(), 30))
                    if reply.get("id") == next_id:
                        if "error" in reply:
                            raise RuntimeError(f"{method}: {reply['error']}")
                        return reply.get("result", {})
                    events.append(reply)

            target = await call("Target.createTarget", {"url": "about:blank"})
            session = (await call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}))["sessionId"]
            await call("Network.enable", session=session)
            await call("Page.enable", session=session)
            await call("Page.navigate", {"url": URL}, session=session)
            title = ""
            for _ in range(100):
                result = await call("Runtime.evaluate", {"expression": "document.title"}, session=session)
                title = result.get("result", {}).get("value", "")
                if title.startswith("DDP"):
                    break
                await asyncio.sleep(0.1)
            page_protocol = None
            ws_status = None
            for event in events:
                params = event.get("params", {})
                if event.get("method") == "Network.responseReceived" and params.get("type") == "Document":
                    page_protocol = params["response"].get("protocol")
                if event.get("method") == "Network.webSocketHandshakeResponseReceived":
                    ws_status = params["response"].get("status")
            print(json.dumps({"page_protocol": page_protocol, "ws_status": ws_status, "title": title}))
    finally:
        browser.kill()
        browser.wait()


asyncio.run(main())
