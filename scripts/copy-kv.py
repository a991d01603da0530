#!/usr/bin/env python3
"""Copy every key (or every key under a prefix) from one running MantisDB
server to another over the HTTP API: pages of GET /api/v1/kv on the source,
each written to the destination as one atomic POST /api/v1/kv/batch. Its use:
moving the data of a memory-engine server into a rust-engine server
(docs/guide/from-memory-engine.md). Python 3.8+ standard library only.

    scripts/copy-kv.py http://127.0.0.1:8080 http://127.0.0.1:8081 --verify

Tokens come from MANTISDB_SOURCE_TOKEN and MANTISDB_DEST_TOKEN (unset: no
Authorization header). Binary keys and values travel base64-encoded, as the
API sends them.

Limits, by the API's design: each page is read at one point in time, but the
copy as a whole is not, so stop the writers of the source first (or copy
again after they stop; a second copy overwrites with the newer values but
does not remove keys deleted in between). Expiry times are not copied: the
scan does not return them, so a key with a TTL arrives without one.
--verify scans both servers afterwards and compares every key and value.

Exit codes: 0 copied (and verified), 1 a request failed or verify found a
difference, 2 bad arguments.
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class Server:
    """One MantisDB server: its base URL and bearer token."""

    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            try:
                return err.code, json.loads(text)
            except ValueError:
                return err.code, {"error": {"code": "http", "message": text[:200]}}
        except urllib.error.URLError as err:
            raise CopyError(f"{self.url}: {err.reason}") from err

    def scan(self, prefix, limit):
        """Yields pages of (key bytes, value bytes), in key order."""
        start = b""
        while True:
            query = {"prefix": prefix, "limit": str(limit)}
            path = "/api/v1/kv?" + urllib.parse.urlencode(query)
            if start:
                path += "&start=" + urllib.parse.quote(start, safe="")
            status, page = self.request("GET", path)
            if status != 200:
                raise CopyError(f"scan of {self.url} answered {status}: {page}")
            yield [(decode(i, "key"), decode(i, "value")) for i in page["items"]]
            if page["next"] is None:
                return
            start = decode(page, "next")


class CopyError(Exception):
    pass


def decode(obj, field):
    """The bytes of obj[field], honouring its <field>_encoding sibling."""
    if obj.get(field + "_encoding") == "base64":
        return base64.b64decode(obj[field])
    return obj[field].encode()


def encode(op, field, raw):
    """Sets op[field] to raw, as UTF-8 text when it is valid UTF-8, else base64."""
    try:
        op[field] = raw.decode("utf-8")
    except UnicodeDecodeError:
        op[field] = base64.b64encode(raw).decode()
        op[field + "_encoding"] = "base64"


def put_batch(dest, pairs):
    """Writes pairs atomically; halves the batch when the destination finds it too large."""
    ops = []
    for key, value in pairs:
        op = {"op": "put"}
        encode(op, "key", key)
        encode(op, "value", value)
        ops.append(op)
    status, answer = dest.request("POST", "/api/v1/kv/batch", {"operations": ops, "atomic": True})
    if status == 413 and len(pairs) > 1:
        half = len(pairs) // 2
        put_batch(dest, pairs[:half])
        put_batch(dest, pairs[half:])
        return
    if status != 200:
        raise CopyError(f"batch to {dest.url} answered {status}: {answer}")


def verify(source, dest, prefix, limit):
    """Compares both servers' keys and values under prefix; returns the key count."""

    def flat(server):
        for page in server.scan(prefix, limit):
            yield from page

    count = 0
    missing = object()
    src_iter, dst_iter = flat(source), flat(dest)
    while True:
        a, b = next(src_iter, missing), next(dst_iter, missing)
        if a is missing and b is missing:
            return count
        if a != b:
            raise CopyError(f"verify: after {count} equal keys, source has {show(a, missing)}, destination {show(b, missing)}")
        count += 1


def show(item, missing):
    return "no more keys" if item is missing else f"key {item[0]!r} ({len(item[1])}-byte value)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="base URL of the server to read, e.g. http://127.0.0.1:8080")
    parser.add_argument("dest", help="base URL of the server to write, e.g. http://127.0.0.1:8081")
    parser.add_argument("--prefix", default="", help="copy only keys starting with this (default: every key)")
    parser.add_argument("--page", type=int, default=500, help="keys per scan page and per batch, 1..1000 (default 500)")
    parser.add_argument("--verify", action="store_true", help="afterwards, compare every key and value of both servers")
    args = parser.parse_args()
    if not 1 <= args.page <= 1000:
        parser.error("--page must be within 1..1000")
    source = Server(args.source, os.environ.get("MANTISDB_SOURCE_TOKEN", ""))
    dest = Server(args.dest, os.environ.get("MANTISDB_DEST_TOKEN", ""))
    progress = sys.stderr.isatty()
    try:
        copied = 0
        for page in source.scan(args.prefix, args.page):
            if page:
                put_batch(dest, page)
                copied += len(page)
                if progress:
                    print(f"\rcopied {copied} keys", end="", file=sys.stderr, flush=True)
        print(f"\rcopied {copied} keys from {source.url} to {dest.url}", file=sys.stderr)
        if args.verify:
            n = verify(source, dest, args.prefix, args.page)
            print(f"verified: {n} keys equal on both servers", file=sys.stderr)
    except (CopyError, urllib.error.URLError, OSError) as err:
        print(f"\ncopy-kv: {err}" if progress else f"copy-kv: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
