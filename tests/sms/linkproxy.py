#!/usr/bin/python3
"""TCP proxy for the link between batond and baton-smsbuf (tests/sms/README.md): forwards every
connection from 127.0.0.1:--listen to --to byte for byte, and on command adds a one-way delay,
swallows all bytes (blackhole), cuts every connection with RST, or refuses new connections.
Control API: HTTP/JSON on 127.0.0.1:--control. Python 3 stdlib only (asyncio).

Invariant: in each direction the bytes that are not swallowed arrive in the order they were read,
each chunk no earlier than delay_ms (as set when it was read) after it was read; a chunk is
swallowed when the blackhole is on when it is read or when it is due. End of stream is passed on
(after the data before it) even while the blackhole is on. bytes_up / bytes_down count the bytes
written to the server / the client.
"""

import argparse
import asyncio
import collections
import json
import signal
import socket
import struct
import sys
import time

STATE = {"delay_ms": 0, "blackhole": False, "refuse": False}
COUNTERS = {"accepted": 0, "refused": 0, "bytes_up": 0, "bytes_down": 0}
LINKS = set()


def log(msg):
    sys.stderr.write("%s linkproxy: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def abort(writer):
    """Closes writer's socket abortively: SO_LINGER 0 makes close() send RST."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class Link:
    """One proxied connection: a client side, a server side, and a pump each way."""

    def __init__(self, c_reader, c_writer, s_reader, s_writer):
        self.sides = (c_writer, s_writer)
        self.tasks = []
        self.closed = False
        for rd, wr, counter in ((c_reader, s_writer, "bytes_up"),
                                (s_reader, c_writer, "bytes_down")):
            q = collections.deque()
            ev = asyncio.Event()
            self.tasks.append(asyncio.ensure_future(self.read(rd, q, ev)))
            self.tasks.append(asyncio.ensure_future(self.write(wr, q, ev, counter)))

    async def read(self, reader, q, ev):
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await reader.read(65536)
                if not STATE["blackhole"] or not data:
                    q.append((loop.time() + STATE["delay_ms"] / 1000.0, data))
                    ev.set()
                if not data:
                    return
        except (ConnectionError, OSError):
            q.append((loop.time(), None))  # the peer reset: reset the other side too
            ev.set()

    async def write(self, writer, q, ev, counter):
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not q:
                    ev.clear()
                    await ev.wait()
                due, data = q.popleft()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    self.close(rst=True)
                    return
                if data == b"":
                    if writer.can_write_eof():
                        writer.write_eof()
                    self.half_closed(writer)
                    return
                if STATE["blackhole"]:
                    continue
                writer.write(data)
                COUNTERS[counter] += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            self.close(rst=True)

    def half_closed(self, writer):
        writer.eof_sent = True
        if all(getattr(w, "eof_sent", False) for w in self.sides):
            self.close(rst=False)

    def close(self, rst):
        if self.closed:
            return
        self.closed = True
        LINKS.discard(self)
        for w in self.sides:
            if rst:
                abort(w)
            else:
                w.close()
        me = asyncio.current_task()
        for t in self.tasks:
            if t is not me:
                t.cancel()


async def on_client(c_reader, c_writer, target):
    COUNTERS["accepted"] += 1
    if STATE["refuse"]:
        COUNTERS["refused"] += 1
        abort(c_writer)
        return
    try:
        s_reader, s_writer = await asyncio.open_connection(*target)
    except OSError as e:
        log("connect to %s:%d failed: %s" % (target[0], target[1], e))
        abort(c_writer)
        return
    for w in (c_writer, s_writer):
        w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    LINKS.add(Link(c_reader, c_writer, s_reader, s_writer))


def control_action(method, path, body):
    """Returns (status, object) for one control request."""
    if method == "GET" and path == "/state":
        return 200, dict(COUNTERS, connections=len(LINKS), delay_ms=STATE["delay_ms"],
                         blackhole=STATE["blackhole"], refuse=STATE["refuse"])
    if method != "POST":
        return 404, {"error": "no route %s %s" % (method, path)}
    if path == "/config":
        if "delay_ms" in body:
            d = body["delay_ms"]
            if not isinstance(d, (int, float)) or d < 0:
                return 400, {"error": "delay_ms must be a number >= 0"}
            STATE["delay_ms"] = d
        return 200, {"delay_ms": STATE["delay_ms"]}
    if path in ("/blackhole", "/refuse"):
        key = path[1:]
        STATE[key] = bool(body.get("on"))
        log("%s %s" % (key, "on" if STATE[key] else "off"))
        return 200, {"on": STATE[key]}
    if path == "/cut":
        links = list(LINKS)
        for link in links:
            link.close(rst=True)
        log("cut %d connection(s)" % len(links))
        return 200, {"cut": len(links)}
    return 404, {"error": "no route %s %s" % (method, path)}


async def on_control(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        length = 0
        for ln in lines[1:]:
            name, _, value = ln.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
            code, obj = control_action(method, path.split("?")[0], body)
        except ValueError as e:
            code, obj = 400, {"error": str(e)}
        out = json.dumps(obj).encode()
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                     % (code, b"OK" if code == 200 else b"Error", len(out)) + out)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--to", required=True, help="HOST:PORT")
    ap.add_argument("--control", type=int, required=True)
    a = ap.parse_args()
    host, _, port = a.to.rpartition(":")
    target = (host.strip("[]") or "127.0.0.1", int(port))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    proxy = await asyncio.start_server(lambda r, w: on_client(r, w, target), "127.0.0.1",
                                       a.listen)
    ctl = await asyncio.start_server(on_control, "127.0.0.1", a.control)
    print("ready", flush=True)
    log("127.0.0.1:%d -> %s:%d, control 127.0.0.1:%d" % (a.listen, target[0], target[1],
                                                          a.control))
    await stop.wait()
    proxy.close()
    ctl.close()
    for link in list(LINKS):
        link.close(rst=False)


if __name__ == "__main__":
    asyncio.run(main())
