#!/usr/bin/python3
"""A Discord gateway client written with Python's websockets and zlib, to
check gloaming's fake gateway against an implementation that shares none of
its code.

usage: gateway_client.py URL TOKEN [SHARD_ID SHARD_COUNT]

Connects to URL/?v=10&encoding=json&compress=zlib-stream, identifies, and
reads payloads until a dispatch named GLOAMING_TEST_DONE. Each websocket
message is appended to a buffer; a buffer that ends with the zlib
Z_SYNC_FLUSH suffix 00 00 ff ff is inflated through the one decompressobj
of the connection, as Discord's documentation shows. Prints one JSON
object: {"binary_frames": n, "text_frames": n, "payloads": [...]} and
closes with 1000. Exits 1 on any error.
"""
import asyncio
import json
import sys
import zlib

import websockets

ZLIB_SUFFIX = b"\x00\x00\xff\xff"


async def run(url, token, shard):
    inflater = zlib.decompressobj()
    buffer = bytearray()
    counts = {"binary_frames": 0, "text_frames": 0}
    payloads = []
    async with websockets.connect(url + "/?v=10&encoding=json&compress=zlib-stream",
                                  compression=None, max_size=None) as ws:
        identified = False
        async for message in ws:
            if isinstance(message, str):
                counts["text_frames"] += 1
                continue
            counts["binary_frames"] += 1
            buffer.extend(message)
            if not buffer.endswith(ZLIB_SUFFIX):
                continue
            payload = json.loads(inflater.decompress(bytes(buffer)).decode("utf-8"))
            buffer.clear()
            payloads.append(payload)
            if payload["op"] == 10 and not identified:
                identify = {"token": token, "intents": 513,
                            "properties": {"os": "linux", "browser": "python-websockets",
                                           "device": "python-websockets"}}
                if shard:
                    identify["shard"] = shard
                await ws.send(json.dumps({"op": 2, "d": identify}))
                identified = True
            if payload["op"] == 0 and payload["t"] == "GLOAMING_TEST_DONE":
                break
        await ws.close(1000)
    return dict(counts, payloads=payloads)


def main():
    url, token = sys.argv[1], sys.argv[2]
    shard = [int(sys.argv[3]), int(sys.argv[4])] if len(sys.argv) > 4 else None
    result = asyncio.run(asyncio.wait_for(run(url, token, shard), 10))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
