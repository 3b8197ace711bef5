#!/usr/bin/python3
"""HTTP requests with Python's urllib, to check gloaming's fake gateway's
REST routes against an independent client.

Reads a JSON list of requests on stdin:
  [{"method": "GET", "url": "...", "headers": {...}, "body": "..."}, ...]
and prints a JSON list of responses, in order:
  [{"status": 200, "headers": {lowercase name: value}, "body": "..."}, ...]
An optional first argument names a CA file for https:// URLs.
"""
import json
import ssl
import sys
import urllib.error
import urllib.request


def perform(request, context):
    body = request.get("body")
    req = urllib.request.Request(request["url"], method=request.get("method", "GET"),
                                 data=body.encode("utf-8") if body is not None else None,
                                 headers=request.get("headers", {}))
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            status, headers, data = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, headers, data = err.code, err.headers, err.read()
    return {"status": status,
            "headers": {k.lower(): v for k, v in headers.items()},
            "body": data.decode("utf-8")}


def main():
    context = ssl.create_default_context(cafile=sys.argv[1]) if len(sys.argv) > 1 else None
    requests = json.load(sys.stdin)
    print(json.dumps([perform(r, context) for r in requests]))


if __name__ == "__main__":
    main()
