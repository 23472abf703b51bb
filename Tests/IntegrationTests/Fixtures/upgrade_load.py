"""Steady HTTP/1.1 load on one Junction listener while it upgrades: a new connection per request,
keep-alive sessions, and bare connects (connect, then close), each in threads of their own.

  upgrade_load.py <host> <port> <path> [--tls CAFILE]

With --tls every connection is TLS (SNI and certificate check against <host>), bare connects
included (a connect and a full handshake).

Prints "ready" once every kind of worker has succeeded once; reads "stop" on stdin, then prints one
JSON line: {"ok": n, "failures": [...], "refused": n, "connects": n, "retried": n, "by_kind": {...}}.
A keep-alive request that meets a connection closed before any byte of its response is sent again
on a new connection, once, as browsers and HTTP libraries do on a reused connection (RFC 9112
9.3.1); that is counted as `retried`, not as a failure. Every other error is a failure. Stops by
itself after 120 s.
"""

import http.client
import json
import socket
import ssl
import sys
import threading
import time

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cafile = sys.argv[sys.argv.index("--tls") + 1] if "--tls" in sys.argv else None
context = ssl.create_default_context(cafile=cafile) if cafile else None


def connect_http():
    if context is None:
        return http.client.HTTPConnection(host, port, timeout=10)
    return http.client.HTTPSConnection(host, port, timeout=10, context=context)
stop = threading.Event()
lock = threading.Lock()
stats = {"ok": 0, "failures": [], "refused": 0, "connects": 0, "retried": 0, "by_kind": {}}
first = {"fresh": threading.Event(), "keepalive": threading.Event(), "bare": threading.Event()}


def count(kind, ok=True, failure=None):
    with lock:
        if ok:
            stats["ok"] += 1
            stats["by_kind"][kind] = stats["by_kind"].get(kind, 0) + 1
        else:
            if len(stats["failures"]) < 50:
                stats["failures"].append(f"{kind}: {failure}")
            else:
                stats["failures"].append("...")
    if ok:
        first[kind].set()


def fresh():
    while not stop.is_set():
        try:
            connection = connect_http()
            connection.request("GET", path, headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read()
            connection.close()
            if response.status == 200 and body:
                count("fresh")
            else:
                count("fresh", False, f"status {response.status}")
        except ConnectionRefusedError as error:
            with lock:
                stats["refused"] += 1
            count("fresh", False, f"refused: {error}")
        except Exception as error:
            count("fresh", False, f"{type(error).__name__}: {error} (at {time.strftime('%H:%M:%S', time.gmtime())}.{int(time.time() * 1000) % 1000:03d})")
        time.sleep(0.01)


# ssl.SSLEOFError and SSLZeroReturnError: the same close, seen through TLS.
RETRYABLE = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


def keepalive():
    connection = None
    reused = False
    while not stop.is_set():
        for attempt in (1, 2):
            try:
                if connection is None:
                    connection = connect_http()
                    reused = False
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                if response.status == 200 and body:
                    count("keepalive")
                else:
                    count("keepalive", False, f"status {response.status}")
                if response.will_close:
                    connection.close()
                    connection = None
                else:
                    reused = True
                break
            except RETRYABLE as error:
                was_reused = reused
                connection.close()
                connection = None
                if was_reused and attempt == 1:
                    with lock:
                        stats["retried"] += 1
                    continue
                count("keepalive", False, f"{type(error).__name__}: {error} (attempt {attempt}, reused {was_reused}, at {time.strftime('%H:%M:%S', time.gmtime())}.{int(time.time() * 1000) % 1000:03d})")
                break
            except ConnectionRefusedError as error:
                connection = None
                with lock:
                    stats["refused"] += 1
                count("keepalive", False, f"refused: {error}")
                break
            except Exception as error:
                if connection is not None:
                    connection.close()
                connection = None
                count("keepalive", False, f"{type(error).__name__}: {error}")
                break
        time.sleep(0.01)


def bare():
    while not stop.is_set():
        try:
            with socket.create_connection((host, port), timeout=10) as raw:
                if context is not None:
                    with context.wrap_socket(raw, server_hostname=host):
                        pass
            with lock:
                stats["connects"] += 1
            first["bare"].set()
        except ConnectionRefusedError:
            with lock:
                stats["refused"] += 1
                stats["failures"].append("bare: refused")
        except Exception as error:
            with lock:
                stats["failures"].append(f"bare: {type(error).__name__}: {error}")
        time.sleep(0.01)


threads = [threading.Thread(target=target, daemon=True) for target in (fresh, fresh, keepalive, keepalive, bare)]
for thread in threads:
    thread.start()
for event in first.values():
    event.wait(timeout=30)
print("ready", flush=True)
timer = threading.Timer(120, stop.set)
timer.daemon = True
timer.start()
sys.stdin.readline()
stop.set()
for thread in threads:
    thread.join(timeout=15)
print(json.dumps(stats), flush=True)
