"""The baseline: an aiohttp hello-world JSON endpoint, served the way nba serves (uvloop, orjson)."""

from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=orjson.dumps({"hello": "world"}), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other hello processes")
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    app = web.Application()
    app.router.add_route("*", "/hello", hello)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, reuse_port=args.reuse_port or None)


if __name__ == "__main__":
    main()
