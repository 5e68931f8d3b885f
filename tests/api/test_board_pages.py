"""The board's page and assets as served: content types, the headers that keep the page from being turned
against its user (CSP, no framing, no sniffing), caching by ETag, and nothing served but the assets."""

from __future__ import annotations

import re

import pytest

from nba.board import pages
from tests.api.helpers import Client, problem
from tests.conftest import AppFactory


@pytest.mark.parametrize(
    ("path", "ctype", "marker"),
    [
        ("/board", "text/html", b"<title>nba steering board</title>"),
        ("/board/", "text/html", b"<title>nba steering board</title>"),
        ("/board/index.html", "text/html", b"<title>nba steering board</title>"),
        ("/board/board.js", "text/javascript", b'"use strict";'),
        ("/board/board.css", "text/css", b"--accent"),
        ("/board/icon.svg", "image/svg+xml", b"<svg"),
    ],
)
async def test_the_page_and_its_assets_are_served_with_strict_headers(
    client: Client, path: str, ctype: str, marker: bytes
) -> None:
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.content_type == ctype
    assert resp.charset == "utf-8"
    assert marker in await resp.read()
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-cache"
    again = await client.get(path, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    assert await again.read() == b""


async def test_the_page_needs_no_key_on_a_closed_server(make_client: AppFactory) -> None:
    client: Client = await make_client(open_without_keys=False)
    assert (await client.get("/board")).status == 200
    assert (await client.get("/board/board.js")).status == 200


@pytest.mark.parametrize(
    "path",
    ["/board/nothing.js", "/board/..", "/board/%2e%2e%2fpages.py", "/board/..%2F__init__.py", "/board/static"],
)
async def test_nothing_but_the_assets_is_served(client: Client, path: str) -> None:
    body = await problem(await client.get(path), 404)
    assert body["code"] == "not_found"


def test_no_inline_script_or_style_in_the_page() -> None:
    """The policy would block them: a handler or a style attribute in the markup is a bug of the page."""
    html = pages.ASSETS["index.html"].body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"\sstyle\s*=", html)
    script = pages.ASSETS["board.js"].body.decode()
    assert "innerHTML" not in script  # text goes in as text: an action name cannot become markup
    assert not re.search(r"""setAttribute\(\s*["']style""", script)
