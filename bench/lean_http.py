"""A lean HTTP/1.1 load generator for `bench/serve.py`'s saturation rows.

On a 2-core machine the client shares the cores with the server it measures. httpx's async client
spends 3-6 ms of CPU per request (measured beside `winnow serve`), a fifth of the cores at saturation,
which a client on another machine would not take from the server. This one sends a prebuilt
multipart request over keep-alive connections and reads only the status line and the
Content-Length body: a few tenths of a millisecond per request. It checks nothing but the status,
so the correctness rows keep httpx.
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import urlsplit

BOUNDARY = "winnow-bench-boundary"
LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)


def predict_request(body: bytes, host: str) -> bytes:
    """The bytes of one `POST /v1/predict` with `body` as its single `files` part."""
    part = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="image"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + body + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}"
            f"\r\nContent-Length: {len(part)}\r\n\r\n").encode()
    return head + part


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = LENGTH.search(head)
    if length is None:
        raise ValueError(f"a response without Content-Length: {head[:200]!r}")
    await reader.readexactly(int(length.group(1)))
    return int(head.split(b" ", 2)[1])


async def lean_closed_loop(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[int], float]:
    """Send every body with `concurrency` keep-alive connections busy; statuses in order and seconds taken."""
    where = urlsplit(url)
    requests = [predict_request(body, where.netloc) for body in bodies]
    statuses: list[int] = [0] * len(bodies)
    next_index = iter(range(len(bodies)))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        try:
            for i in next_index:
                statuses[i] = await _exchange(reader, writer, requests[i])
        finally:
            writer.close()
    start = time.perf_counter()
    await asyncio.gather(*[connection() for _ in range(concurrency)])
    return statuses, time.perf_counter() - start
