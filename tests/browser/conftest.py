"""A real browser for the console's tests: Debian's chromium, started once per test session with
its DevTools port open; each test connects Playwright to it (connect_over_cdp) and works in a
fresh browser context (own cookies), so the suite pays for one browser start, not one per test.

Playwright cannot download its own browsers here, and need not: it drives the system's chromium.
`./scripts/test` installs the `chromium` package when it runs as root and chromium is missing;
without any chromium these tests are skipped, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    if os.environ.get("GRIDBOT_CHROMIUM"):
        return os.environ["GRIDBOT_CHROMIUM"]
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@pytest.fixture(scope="session")
def chromium_endpoint():
    """The DevTools websocket of one headless chromium for the whole session."""
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on this machine (apt-get install chromium, or set GRIDBOT_CHROMIUM)")
    pytest.importorskip("playwright", reason="the test extra is not installed (pip install -e '.[test]')")
    profile = tempfile.mkdtemp(prefix="gridbot-chromium-")
    proc = subprocess.Popen(
        [path, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    endpoint = None
    deadline = time.monotonic() + 30
    while endpoint is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            endpoint = m.group(1)
    if endpoint is None:
        proc.kill()
        raise RuntimeError(f"{path} did not open its DevTools port")
    yield endpoint
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def browser(chromium_endpoint):
    """Playwright connected to the session's chromium; `await browser.new_context()` per person."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.connect_over_cdp(chromium_endpoint)
        contexts = []
        orig = b.new_context

        async def new_context(**kw):
            ctx = await orig(**kw)
            contexts.append(ctx)
            return ctx

        b.new_context = new_context  # closed after the test, so no cookies leak into the next one
        try:
            yield b
        finally:
            for ctx in contexts:
                await ctx.close()
