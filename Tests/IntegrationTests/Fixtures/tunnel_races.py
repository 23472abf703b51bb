"""WebSocket tunnels under backpressure and close races, end to end: a backend and its clients in
one process, so each side checks every byte the other sent, in order, and only its own.

Usage: tunnel_races.py
Prints "backend PORT" (the WebSocket backend to put behind Junction), then reads one command per
line on stdin and answers one JSON line on stdout:

  slow JUNCTION_PORT
      one tunnel; the backend sends 16 MiB while the client reads nothing until the backend is
      blocked (its kernel buffer full, so Junction's queue towards the client is full and it
      stopped reading), then the client reads it all; then the same the other way
  churn JUNCTION_PORT TOTAL CONCURRENT SEED
      TOTAL tunnels, CONCURRENT at a time, each ended one of six ways while bytes flow both ways:
      the client closes or resets mid-stream, resets after it stopped reading (Junction's queue
      to it full), the backend closes or resets after a number of frames, or the client
      half-closes and the backend answers its EOF with three more frames
  quit

Every frame carries its tunnel's tag and a sequence number and is filled with the tag, so a byte
of another tunnel (a descriptor written after its number was reused) or a lost or reordered frame
breaks the check. Each answer: {"tunnels": done, "frames_to_clients": n, "frames_to_backend": m,
"failures": [...]}. Every wait is bounded.
"""

import asyncio
import json
import random
import socket
import struct
import sys

SERVER_PAYLOAD = 4096
CLIENT_PAYLOAD = 512
TIMEOUT = 30

backends = {}  # tunnel id -> BackendSide
stats = {"frames_to_clients": 0, "frames_to_backend": 0}


def tag(tunnel):
    return b"T%07d" % tunnel


def payload(tunnel, seq, size):
    head = tag(tunnel) + struct.pack(">Q", seq)
    return head + tag(tunnel) * ((size - len(head)) // 8)


def frame(data, masked):
    length = len(data)
    if length < 126:
        head = bytes([0x82, (0x80 if masked else 0) | length])
    else:
        head = bytes([0x82, (0x80 if masked else 0) | 126]) + struct.pack(">H", length)
    # A zero mask key: the payload travels as it is.
    return head + (b"\0\0\0\0" if masked else b"") + data


class Frames:
    """Parses frames of one direction and checks each is the next one of `tunnel`."""

    def __init__(self, tunnel, size, masked):
        self.tunnel, self.size, self.masked = tunnel, size, masked
        self.buffer = bytearray()
        self.count = 0

    def feed(self, data):
        self.buffer += data
        while len(self.buffer) >= 2:
            length = self.buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length = struct.unpack(">H", self.buffer[2:4])[0]
                offset = 4
            if self.masked:
                offset += 4
            if len(self.buffer) < offset + length:
                return
            got = bytes(self.buffer[offset : offset + length])
            want = payload(self.tunnel, self.count, self.size)
            if self.buffer[0] != 0x82 or got != want:
                found = got[:8]
                raise AssertionError(
                    f"tunnel {self.tunnel}: frame {self.count} is not the next one of its own (starts {found!r})"
                )
            del self.buffer[: offset + length]
            self.count += 1


class BackendSide:
    """The backend's end of one tunnel."""

    def __init__(self, tunnel, mode, reader, writer):
        self.tunnel, self.mode, self.reader, self.writer = tunnel, mode, reader, writer
        self.frames = Frames(tunnel, CLIENT_PAYLOAD, masked=True)
        self.sent = 0
        self.read_gate = asyncio.Event()
        if mode != "slow":
            self.read_gate.set()
        self.blocked = asyncio.Event()
        self.done = asyncio.get_running_loop().create_future()

    def write_blocked(self):
        return self.writer.transport.get_write_buffer_size() > 0

    async def send(self, count):
        for _ in range(count):
            if self.writer.transport.is_closing():
                raise ConnectionResetError("the connection is gone")
            self.writer.write(frame(payload(self.tunnel, self.sent, SERVER_PAYLOAD), masked=False))
            self.sent += 1
            if self.write_blocked():
                self.blocked.set()
            await self.writer.drain()

    async def run(self):
        try:
            reading = asyncio.ensure_future(self.read())
            if self.mode in ("stream", "slow"):
                await self.send(4096 if self.mode == "slow" else 1 << 30)
            elif self.mode in ("close", "reset"):
                await self.send(40 + self.tunnel % 50)
                if self.mode == "close":
                    await until(lambda: self.frames.count == 20, f"tunnel {self.tunnel}'s backend has 20 frames", 30)
                if self.mode == "reset":
                    self.writer.transport.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                self.writer.close()
            elif self.mode == "halfclose":
                await self.send(40)
                await reading  # the client's EOF
                await self.send(3)
                self.writer.close()
            await reading
            self.writer.close()
            if not self.done.done():
                self.done.set_result(None)
        except (ConnectionError, OSError):
            if not self.done.done():
                self.done.set_result(None)
        except Exception as error:  # noqa: BLE001 - reported to the test
            if not self.done.done():
                self.done.set_exception(error)

    async def read(self):
        await self.read_gate.wait()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                self.frames.feed(data)
        except (ConnectionError, OSError):
            return


async def serve(reader, writer):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    target = head.split(b" ", 2)[1].decode()
    # /sockjs/<mode>/<id>
    _, _, mode, tunnel = target.split("/")
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    )
    if mode == "slow":
        # Small buffers, so that 16 MiB fill every buffer on the way and the sender blocks.
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    side = BackendSide(int(tunnel), mode, reader, writer)
    backends[int(tunnel)] = side
    await side.run()


async def open_tunnel(port, mode, tunnel):
    raw = socket.socket()
    if mode == "slow":
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    raw.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port)), TIMEOUT)
    reader, writer = await asyncio.open_connection(sock=raw)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(
        f"GET /sockjs/{mode}/{tunnel} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    if not head.startswith(b"HTTP/1.1 101"):
        raise AssertionError(f"tunnel {tunnel}: no 101: {head[:60]!r}")
    for _ in range(100):  # the backend registers its side before it answers
        if tunnel in backends:
            break
        await asyncio.sleep(0.01)
    return reader, writer, backends[tunnel]


async def until(condition, what, seconds=10):
    """Polls `condition` (bounded)."""
    for _ in range(seconds * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting until {what}")


def reset(writer):
    writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def read_frames(reader, frames, at_least=None, to_end=False, chunk=65536):
    """Reads until `at_least` bytes, or to EOF or a reset, `chunk` bytes at most at a time."""
    got = 0
    while to_end or got < at_least:
        try:
            data = await asyncio.wait_for(reader.read(chunk), TIMEOUT)
        except (ConnectionError, OSError):
            return
        if not data:
            return
        got += len(data)
        frames.feed(data)


async def slow(port):
    tunnel = 1_000_000
    reader, writer, backend = await open_tunnel(port, "slow", tunnel)
    down = Frames(tunnel, SERVER_PAYLOAD, masked=False)
    await until(backend.blocked.is_set, "the backend is blocked by a client that reads nothing")
    # Small reads: the buffers on the way drain and fill again many times, so Junction goes from
    # its queue to direct writes and back over and over while bytes are still queued.
    await read_frames(reader, down, at_least=4096 * (SERVER_PAYLOAD + 4), chunk=1500)
    if down.count != 4096:
        raise AssertionError(f"the client got {down.count} of 4096 frames")
    # The other way: the backend reads nothing until the client is blocked.
    client_sent = 0
    blocked = False
    for _ in range(32768):  # 16 MiB of 512-byte frames
        writer.write(frame(payload(tunnel, client_sent, CLIENT_PAYLOAD), masked=True))
        client_sent += 1
        if writer.transport.get_write_buffer_size() > 0 and not blocked:
            blocked = True
            backend.read_gate.set()
        await writer.drain()
    if not blocked:
        raise AssertionError("the client was never blocked by a backend that reads nothing")
    backend.read_gate.set()
    await until(lambda: backend.frames.count == client_sent, f"the backend has all {client_sent} frames", 30)
    writer.close()
    await asyncio.wait_for(backend.done, TIMEOUT)
    stats["frames_to_clients"] += down.count
    stats["frames_to_backend"] += backend.frames.count
    return 1


async def one(port, tunnel, mode, rng):
    reader, writer, backend = await open_tunnel(port, mode, tunnel)
    down = Frames(tunnel, SERVER_PAYLOAD, masked=False)
    for seq in range(20):
        writer.write(frame(payload(tunnel, seq, CLIENT_PAYLOAD), masked=True))
    try:
        await writer.drain()
    except ConnectionError:
        # A backend that resets may do so before these are out.
        if mode != "reset":
            raise
    if mode == "stream":
        how = tunnel % 3  # 0: close, 1: reset, 2: stop reading, then reset
        await read_frames(reader, down, at_least=rng.randrange(64 << 10, 512 << 10))
        # Every ending here is a reset (a close with the stream's bytes unread sends RST too), and
        # a reset may take with it what the proxy has not read yet: tunnel reads start at 256
        # bytes, one per wake-up, so on a loaded machine the client's 20 frames can still be in
        # the proxy's socket. The race under test is the backend's stream against the ending.
        await until(lambda: backend.frames.count == 20, f"tunnel {tunnel}'s backend has the client's 20 frames", 30)
        if how == 2:
            await until(backend.blocked.is_set, f"tunnel {tunnel}'s backend is blocked", 30)
        if how == 0:
            writer.close()
        else:
            reset(writer)
    elif mode in ("close", "reset"):
        await read_frames(reader, down, to_end=True)
        if mode == "close" and down.count != backend.sent:
            raise AssertionError(f"tunnel {tunnel}: {down.count} of {backend.sent} frames before the backend's FIN")
        if mode == "reset" and down.count > backend.sent:
            raise AssertionError(f"tunnel {tunnel}: more frames than were sent")
        writer.close()
    elif mode == "halfclose":
        await until(lambda: backend.frames.count == 20, f"tunnel {tunnel}'s backend has the client's 20 frames", 30)
        writer.write_eof()
        await read_frames(reader, down, to_end=True)
        if down.count != 43:
            raise AssertionError(f"tunnel {tunnel}: {down.count} of 43 frames after a half-close")
        writer.close()
    await asyncio.wait_for(backend.done, TIMEOUT)
    if mode != "reset" and backend.frames.count != 20:
        raise AssertionError(f"tunnel {tunnel}: the backend got {backend.frames.count} of 20 frames")
    stats["frames_to_clients"] += down.count
    stats["frames_to_backend"] += backend.frames.count
    return 1


async def churn(port, total, concurrent, seed):
    rng = random.Random(seed)
    modes = ["stream", "stream", "stream", "close", "reset", "halfclose"]
    gate = asyncio.Semaphore(concurrent)
    failures = []

    async def run(tunnel):
        async with gate:
            try:
                return await asyncio.wait_for(one(port, tunnel, modes[tunnel % len(modes)], rng), 60)
            except Exception as error:  # noqa: BLE001 - reported to the test
                failures.append(f"tunnel {tunnel}: {type(error).__name__}: {error}")
                return 0

    done = await asyncio.gather(*(run(tunnel) for tunnel in range(total)))
    return sum(done), failures


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(f"backend {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            break
        stats.update(frames_to_clients=0, frames_to_backend=0)
        failures = []
        done = 0
        try:
            if line[0] == "slow":
                done = await asyncio.wait_for(slow(int(line[1])), 120)
            elif line[0] == "churn":
                done, failures = await asyncio.wait_for(
                    churn(int(line[1]), int(line[2]), int(line[3]), int(line[4])), 300
                )
        except Exception as error:  # noqa: BLE001 - reported to the test
            failures.append(f"{type(error).__name__}: {error}")
        print(json.dumps({"tunnels": done, **stats, "failures": failures[:10]}), flush=True)
    server.close()


asyncio.run(main())
