#!/usr/bin/python3
"""An independent websocket peer (Python's websockets) for gloaming's specs.

Prints "<port> <pid>" on stdout once listening on 127.0.0.1, then serves
until killed. Paths choose the behaviour:
  /echo          echoes every message back, same type
  /fragments     sends "hello world" in three fragments, then echoes
  /ping          pings (payload b"are you there"), reports the pong as text
  /close-first   closes at once with 4000 "bye"
  /zlib          sends three zlib-stream payloads, the last split across
                 three binary messages (Discord's transport compression)
  /headers       replies with the request's headers as JSON
"""
import asyncio
import json
import os
import ssl
import sys
import zlib

import websockets


async def handler(ws, path):
    if path.startswith("/echo"):
        async for msg in ws:
            await ws.send(msg)
    elif path.startswith("/fragments"):
        await ws.send(iter(["hel", "lo ", "world"]))
        async for msg in ws:
            await ws.send(msg)
    elif path.startswith("/ping"):
        waiter = await ws.ping(b"are you there")
        await waiter
        await ws.send("pong received")
        async for msg in ws:
            await ws.send(msg)
    elif path.startswith("/close-first"):
        await ws.close(4000, "bye")
    elif path.startswith("/zlib"):
        z = zlib.compressobj()
        payloads = [
            json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}),
            json.dumps({"op": 0, "t": "MESSAGE_CREATE", "s": 1,
                        "d": {"content": "h\u00e9llo \U0001F600" * 50}}),
            json.dumps({"op": 0, "t": "GUILD_CREATE", "s": 2,
                        "d": {"members": list(range(2000))}}),
        ]
        for i, p in enumerate(payloads):
            data = z.compress(p.encode()) + z.flush(zlib.Z_SYNC_FLUSH)
            if i < 2:
                await ws.send(data)
            else:
                a, b = len(data) // 3, 2 * len(data) // 3
                for part in (data[:a], data[a:b], data[b:]):
                    await ws.send(part)
        async for msg in ws:
            await ws.send(msg)
    elif path.startswith("/headers"):
        await ws.send(json.dumps(dict(ws.request_headers.raw_items())))
        async for msg in ws:
            pass


async def main():
    ctx = None
    if len(sys.argv) >= 3:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    host = os.environ.get("PEER_HOST", "127.0.0.1")
    async with websockets.serve(handler, host, 0, ssl=ctx, max_size=None,
                                compression=None, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, os.getpid(), flush=True)
        await asyncio.Future()


asyncio.run(main())
