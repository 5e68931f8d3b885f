"""Request bodies: read whole, within a size limit and a time limit, then parsed as JSON.

A body arrives in as many pieces as the network cuts it into; one `read(n)` returns only what has
arrived so far, so the body is read until its end. A client that stops sending part-way holds a
connection and a handler: each piece must arrive within `idle` seconds and the whole body within
`total`, or the answer is 408.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from nba.errors import PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from nba.http import wire


@dataclass(frozen=True, slots=True)
class BodyLimits:
    idle: float = 10.0  # seconds the body may pause between two pieces
    total: float = 60.0  # seconds the whole body may take (4 MiB at about 0.5 Mbit/s)


async def read_json(request: web.Request, limit: int, limits: BodyLimits) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; this endpoint takes at most {limit}")
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"send JSON with Content-Type: application/json (got {ctype or 'none'})")
    return wire.parse_json(await read_body(request, limit, limits))


async def read_typed(request: web.Request, types: tuple[str, ...], limit: int, limits: BodyLimits) -> bytes:
    """A body of one of the media `types`, whole, within `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; this endpoint takes at most {limit}")
    if request.content_type not in types:
        raise UnsupportedMediaType(f"send Content-Type: {types[0]} (got {request.content_type or 'none'})")
    return await read_body(request, limit, limits)


async def read_body(request: web.Request, limit: int, limits: BodyLimits) -> bytes:
    content = request.content
    # a small body has usually arrived whole with its headers: no timers for it
    first = await content.read(limit + 1) if content.is_eof() or content.total_bytes else b""
    if content.at_eof() or len(first) > limit:
        return _checked(first, limit)
    pieces = [first]
    size = len(first)
    try:
        async with asyncio.timeout(limits.total):
            while True:
                async with asyncio.timeout(limits.idle):
                    piece = await content.read(limit + 1 - size)
                if not piece:
                    break
                pieces.append(piece)
                size += len(piece)
                if size > limit:
                    break
    except TimeoutError:
        raise RequestTimeout(
            f"the body stopped arriving after {size} bytes (each part must follow within "
            f"{limits.idle:g} s, the whole body within {limits.total:g} s)"
        ) from None
    return _checked(b"".join(pieces), limit)


def _checked(body: bytes, limit: int) -> bytes:
    if len(body) > limit:
        raise PayloadTooLarge(f"body is over {limit} bytes; this endpoint takes at most {limit}")
    return body
