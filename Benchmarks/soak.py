"""Junction under mixed load for N minutes, against local backends on 127.0.0.1.

  Benchmarks/soak.sh [--minutes 60] [--websockets 2000] [--junction PATH] [--kill-every 4]

Load, all at once: keep-alive HTTP/1.1 (h2load), a new connection per HTTP/1.1 request, HTTP/2 over
TLS (h2load), 5 MB uploads and 20 MB downloads, and WebSockets: WEBSOCKETS held open, a few
percent closed and opened again every second, messages echoed through them. Meanwhile a SIGHUP
every minute, and one of the two HTTP backends killed (SIGKILL) every KILL_EVERY minutes and started
again 20 s later. Every minute it samples Junction's RSS, open file descriptors, connections to the
backends and open tunnels (admin /metrics), and counts requests: failures in a minute in which a
backend was killed are the ones it had in flight; any other failure is a finding.

Prints a Markdown table at the end (also saved under Benchmarks/results/soak-<time>.md) and exits 1
if a request failed outside a kill or RSS or fds grew more than 10% after warm-up.
"""

import argparse
import asyncio
import http.client
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counter:
    """Per-minute request outcomes of one kind of load."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}
        self.failed = {}

    def add(self, minute, ok=0, failed=0):
        with self.lock:
            self.ok[minute] = self.ok.get(minute, 0) + ok
            self.failed[minute] = self.failed.get(minute, 0) + failed


class Soak:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="junction-soak.")
        self.processes = []
        self.start = time.monotonic()
        self.stop = threading.Event()
        self.counters = {name: Counter() for name in ["h1-keepalive", "h1-new-conn", "h2", "upload", "download", "ws"]}
        self.kill_minutes = set()
        self.samples = []
        self.ports = {name: free_port() for name in ["http", "https", "admin", "b1", "b2", "w1", "w2"]}

    def minute(self):
        return int((time.monotonic() - self.start) // 60)

    # --- setup -----------------------------------------------------------------------------

    def start_backend(self, name):
        prefix = os.path.join(self.work, name)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off; master_process off; worker_rlimit_nofile 8192;
error_log {prefix}/logs/error.log error; pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off; keepalive_requests 100000; client_max_body_size 0; client_body_temp_path {prefix};
  proxy_temp_path {prefix}; fastcgi_temp_path {prefix}; uwsgi_temp_path {prefix}; scgi_temp_path {prefix};
  server {{
    listen 127.0.0.1:{self.ports[name]};
    location = /health {{ return 200 "ok\\n"; }}
    location = /download {{ alias {self.work}/download.bin; }}
    location = /upload {{ client_body_in_file_only off; client_body_buffer_size 1m; proxy_pass http://127.0.0.1:{self.ports[name]}/discard; }}
    location = /discard {{ return 200 "{name}\\n"; }}
    location / {{ return 200 "{name} hello\\n"; }}
  }}
}}
""")
        process = subprocess.Popen(["nginx", "-c", conf, "-p", prefix], stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def start_ws_backend(self, name):
        code = """
import asyncio, sys, websockets
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=None, ping_interval=None):
        await asyncio.Future()
asyncio.run(main())
"""
        process = subprocess.Popen([sys.executable, "-c", code, str(self.ports[name])], stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def config(self, generation):
        p = self.ports
        return f"""# soak generation {generation}
threads: 2
listeners:
  - name: http
    address: 127.0.0.1:{p['http']}
    http2: true
  - name: https
    address: 127.0.0.1:{p['https']}
    http2: true
    tls:
      certificates:
        - cert: dev.pem
          key: dev-key.pem
admin:
  address: 127.0.0.1:{p['admin']}
routes:
  - name: ddp
    match:
      path_prefix: /websocket
    pool: ddp
  - name: web
    pool: web
pools:
  ddp:
    backends:
      - address: 127.0.0.1:{p['w1']}
      - address: 127.0.0.1:{p['w2']}
  web:
    retries: 2
    backends:
      - address: 127.0.0.1:{p['b1']}
      - address: 127.0.0.1:{p['b2']}
    health_check:
      path: /health
      interval: 1s
      timeout: 500ms
      healthy_threshold: 2
      unhealthy_threshold: 2
logging:
  access_log: "off"
"""

    def start_junction(self):
        subprocess.run([os.path.join(ROOT, "certs", "make-dev-certs.sh"), self.work], check=True,
                       stdout=subprocess.DEVNULL)
        with open(os.path.join(self.work, "download.bin"), "wb") as f:
            f.write(os.urandom(20 << 20))
        self.config_path = os.path.join(self.work, "junction.yaml")
        with open(self.config_path, "w") as f:
            f.write(self.config(1))
        self.junction = subprocess.Popen(
            [self.args.junction, "run", "--config", self.config_path],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, "junction.log"), "w"))
        self.processes.append(self.junction)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.ports['admin']}/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("junction did not start; see " + os.path.join(self.work, "junction.log"))

    # --- load ------------------------------------------------------------------------------

    def h2load(self, name, arguments):
        """h2load in one-minute runs (so failures land in the minute they happened)."""
        while not self.stop.is_set():
            minute = self.minute()
            output = subprocess.run(["h2load", "-D", "55"] + arguments, capture_output=True, text=True).stdout
            match = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", output)
            if match:
                ok, failed, errored, timeout = map(int, match.groups())
                self.counters[name].add(minute, ok=ok, failed=failed + errored + timeout)
            else:
                self.counters[name].add(minute, failed=1)
            self.stop.wait(max(0, 60 - (time.monotonic() - self.start) % 60))

    def new_connections(self):
        while not self.stop.is_set():
            minute = self.minute()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=10)
                conn.request("GET", "/new?x=" + str(random.random()))
                response = conn.getresponse()
                response.read()
                conn.close()
                self.counters["h1-new-conn"].add(minute, ok=1 if response.status == 200 else 0,
                                                 failed=0 if response.status == 200 else 1)
            except OSError:
                self.counters["h1-new-conn"].add(minute, failed=1)
            self.stop.wait(0.02)

    def transfers(self):
        body = os.urandom(5 << 20)
        context = ssl.create_default_context(cafile=os.path.join(self.work, "dev-ca.pem"))
        while not self.stop.is_set():
            minute = self.minute()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.ports["http"], timeout=30)
                conn.request("POST", "/upload", body=body, headers={"Content-Type": "application/octet-stream"})
                response = conn.getresponse()
                response.read()
                conn.close()
                self.counters["upload"].add(minute, ok=int(response.status == 200), failed=int(response.status != 200))
            except OSError:
                self.counters["upload"].add(minute, failed=1)
            try:
                conn = http.client.HTTPSConnection("localhost", self.ports["https"], timeout=30, context=context)
                conn.request("GET", "/download")
                response = conn.getresponse()
                data = response.read()
                conn.close()
                good = response.status == 200 and len(data) == 20 << 20
                self.counters["download"].add(minute, ok=int(good), failed=int(not good))
            except OSError:
                self.counters["download"].add(minute, failed=1)
            self.stop.wait(5)

    def websockets(self):
        import websockets

        async def run():
            url = f"ws://127.0.0.1:{self.ports['http']}/websocket"
            sockets = []

            async def open_one():
                try:
                    sockets.append(await websockets.connect(url, ping_interval=None, max_size=None, open_timeout=10))
                except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                    self.counters["ws"].add(self.minute(), failed=1)

            for start in range(0, self.args.websockets, 100):
                await asyncio.gather(*[open_one() for _ in range(min(100, self.args.websockets - start))])
            while not self.stop.is_set():
                minute = self.minute()
                churn = max(1, self.args.websockets // 50)
                random.shuffle(sockets)
                for ws in sockets[:churn]:
                    await ws.close()
                del sockets[:churn]
                await asyncio.gather(*[open_one() for _ in range(self.args.websockets - len(sockets))])

                async def echo(ws):
                    message = "ping " + str(random.random())
                    try:
                        await ws.send(message)
                        reply = await asyncio.wait_for(ws.recv(), 10)
                        self.counters["ws"].add(minute, ok=int(reply == message), failed=int(reply != message))
                    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                        self.counters["ws"].add(minute, failed=1)
                        if ws in sockets:
                            sockets.remove(ws)

                await asyncio.gather(*[echo(ws) for ws in random.sample(sockets, min(100, len(sockets)))])
                await asyncio.sleep(1)
            for ws in sockets:
                await ws.close()

        asyncio.run(run())

    # --- chaos and measurement ---------------------------------------------------------------

    def chaos(self, backend):
        generation = 1
        next_kill = self.args.kill_every * 60
        while not self.stop.wait(max(0, 60 - (time.monotonic() - self.start) % 60)):
            generation += 1
            with open(self.config_path, "w") as f:
                f.write(self.config(generation))
            self.junction.send_signal(signal.SIGHUP)
            elapsed = time.monotonic() - self.start
            if elapsed >= next_kill - 1:
                next_kill += self.args.kill_every * 60
                self.kill_minutes.add(self.minute())
                backend.kill()
                backend.wait()
                self.stop.wait(20)
                self.kill_minutes.add(self.minute())
                backend = self.start_backend("b2")

    def sample(self):
        pid = self.junction.pid
        with open(f"/proc/{pid}/status") as f:
            rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{self.ports['admin']}/metrics", timeout=5).read().decode()
        metric_tunnels = sum(float(line.split()[-1]) for line in metrics.splitlines()
                             if line.startswith("junction_tunnels_active"))
        ss = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
        peer_ports = [int(line.split()[3].rsplit(":", 1)[1]) for line in ss.splitlines() if f"pid={pid}," in line]
        upstream = sum(1 for port in peer_ports if port in {self.ports[name] for name in ["b1", "b2", "w1", "w2"]})
        # Tunnels counted by the proxy's own sockets to the WebSocket backends, and as the metric says.
        tunnels = sum(1 for port in peer_ports if port in {self.ports["w1"], self.ports["w2"]})
        self.samples.append({"minute": self.minute(), "rss_kb": rss, "fds": fds, "tunnels": tunnels,
                             "metric_tunnels": int(metric_tunnels), "upstream": upstream})

    def run(self):
        b1 = self.start_backend("b1")
        b2 = self.start_backend("b2")
        self.start_ws_backend("w1")
        self.start_ws_backend("w2")
        self.start_junction()
        workers = [
            threading.Thread(target=self.h2load, args=("h1-keepalive", ["--h1", "-c", "8", "-t", "1", "--rps", "40",
                                                                        f"http://127.0.0.1:{self.ports['http']}/"])),
            threading.Thread(target=self.h2load, args=("h2", ["-c", "4", "-m", "4", "-t", "1", "--rps", "40",
                                                              f"https://127.0.0.1:{self.ports['https']}/"])),
            threading.Thread(target=self.new_connections),
            threading.Thread(target=self.transfers),
            threading.Thread(target=self.websockets),
            threading.Thread(target=self.chaos, args=(b2,)),
        ]
        for worker in workers:
            worker.start()
        end = self.start + self.args.minutes * 60
        self.stop.wait(10)
        self.sample()
        while time.monotonic() < end:
            self.stop.wait(min(60, max(0, end - time.monotonic())))
            self.sample()
        self.stop.set()
        for worker in workers:
            worker.join(timeout=120)
        self.report()

    def report(self):
        warm = next((s for s in self.samples if s["minute"] >= min(5, self.args.minutes // 2)), self.samples[0])
        last = self.samples[-1]
        lines = [
            f"Soak: {self.args.minutes} min, {self.args.websockets} WebSockets churning, SIGHUP every minute, "
            f"backend b2 killed every {self.args.kill_every} min (minutes {sorted(self.kill_minutes)}).",
            "",
            "| minute | RSS MiB | open fds | upstream connections | tunnels (sockets) | junction_tunnels_active |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.samples:
            lines.append(f"| {s['minute']} | {s['rss_kb'] / 1024:.1f} | {s['fds']} | {s['upstream']} | {s['tunnels']} | {s['metric_tunnels']} |")
        lines += ["", "| load | ok | failed in a kill minute | failed otherwise |", "|---|---:|---:|---:|"]
        unexplained_total = 0
        for name, counter in self.counters.items():
            ok = sum(counter.ok.values())
            killed = sum(v for m, v in counter.failed.items() if m in self.kill_minutes)
            other = sum(v for m, v in counter.failed.items() if m not in self.kill_minutes)
            unexplained_total += other
            lines.append(f"| {name} | {ok} | {killed} | {other} |")
        rss_growth = (last["rss_kb"] - warm["rss_kb"]) / warm["rss_kb"]
        fd_growth = (last["fds"] - warm["fds"]) / warm["fds"]
        lines += ["", f"After warm-up (minute {warm['minute']}) to the end: RSS {rss_growth:+.1%}, fds {fd_growth:+.1%}."]
        text = "\n".join(lines)
        print(text)
        os.makedirs(os.path.join(ROOT, "Benchmarks", "results"), exist_ok=True)
        with open(os.path.join(ROOT, "Benchmarks", "results", time.strftime("soak-%Y%m%dT%H%M%SZ.md", time.gmtime())), "w") as f:
            f.write(text + "\n")
        self.failed = unexplained_total > 0 or rss_growth > 0.10 or fd_growth > 0.10

    def cleanup(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()


def main():
    parser = argparse.ArgumentParser(description="Junction soak run")
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--websockets", type=int, default=2000)
    parser.add_argument("--kill-every", type=int, default=4, help="minutes between backend kills")
    parser.add_argument("--junction", default=os.path.join(ROOT, ".build", "release", "junction"))
    args = parser.parse_args()
    soak = Soak(args)
    try:
        soak.run()
    finally:
        soak.cleanup()
    sys.exit(1 if getattr(soak, "failed", True) else 0)


if __name__ == "__main__":
    main()
