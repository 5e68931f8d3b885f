"""Screenshots of the steering board's pages for docs/board.md: signs in to a running server's board with a
key and saves a PNG of each page (Debian's Chromium through Playwright; nothing is downloaded).

    .venv/bin/python scripts/board_screenshots.py --url http://127.0.0.1:8080 --key "$MARKETER_KEY"

The explorer is shown with a preview for --customer; the outbound page with the newest run's report."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path

from playwright.async_api import Page, async_playwright

PAGES = ("performance", "learning", "rules", "explorer", "outbound")
DOCS = Path(__file__).resolve().parent.parent / "docs"


async def _extras(page: Page, name: str, customer: str) -> None:
    """What a page shows once used: a diff, a preview, a run's report."""
    if name == "rules" and await page.locator("#diff-from option").count() > 1:
        await page.click("#diff-form button")
        await page.locator("#diff p").wait_for()
    elif name == "explorer":
        await page.fill("#ex-customer", customer)
        await page.click("#explorer-form button")
        await page.locator("#ex-result:not([hidden]), #messages .message").first.wait_for()
    elif name == "outbound" and await page.locator("#outbound-runs tbody button").count():
        await page.locator("#outbound-runs tbody button").first.click()
        await page.locator("#outbound-report h3").wait_for()


async def shoot(url: str, key: str, out: Path, customer: str, width: int) -> list[Path]:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium on PATH (apt-get install chromium)")
    saved = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": width, "height": 900}, locale="en-US")
        context.set_default_timeout(60_000)
        page = await context.new_page()
        await page.goto(f"{url.rstrip('/')}/board")
        await page.locator("#page-signin:not([hidden]), #who:not([hidden])").first.wait_for()
        if await page.locator("#page-signin").is_visible():
            await page.fill("#api-key", key)
            await page.click("#signin-form button")
            await page.locator("#who:not([hidden]), #messages .message").first.wait_for()
            if not await page.locator("#who").is_visible():
                raise SystemExit(f"sign-in refused: {await page.inner_text('#messages')}")
        for name in PAGES:
            link = page.locator(f"#tabs a[data-page={name}]")
            if await link.is_hidden():
                print(f"{name}: not for this key's role, skipped", file=sys.stderr)
                continue
            await link.click()
            await page.locator(f"#page-{name}[data-state=loaded], #page-{name}[data-state=failed]").wait_for()
            await _extras(page, name, customer)
            path = out / f"board-{name}.png"
            await page.screenshot(path=str(path), full_page=True)
            saved.append(path)
            print(path)
        await browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the server (default %(default)s)")
    parser.add_argument("--key", default="", help="a marketer or admin key (none for an open server)")
    parser.add_argument("--out", type=Path, default=DOCS, help="where the PNGs go (default docs/)")
    parser.add_argument("--customer", default="c-1003", help="the explorer's customer (default %(default)s)")
    parser.add_argument("--width", type=int, default=1366, help="the window's width in pixels (a laptop's)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(args.url, args.key, args.out, args.customer, args.width))


if __name__ == "__main__":
    main()
