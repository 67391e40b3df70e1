"""Headless Chromium (Debian's `chromium` package) driven over the Chrome DevTools Protocol.

A small synchronous facade: the protocol's websocket (aiohttp) runs on an event loop in a thread of its own, so
tests call ``page.evaluate(...)`` and wait with e2e.harness.wait like everywhere else. No driver downloads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from e2e.harness.wait import wait_for

T = TypeVar("T")
CALL_TIMEOUT = 30.0


def chromium_binary() -> str:
    """The browser itself (Debian's /usr/bin/chromium is a wrapper script around it)."""
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("chromium is not installed: e2e/setup.sh installs Debian's chromium package")


class Browser:
    """One headless Chromium with one page; ``close()`` stops it."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="modelratchet-chromium-"))
        self.proc = subprocess.Popen(
            [
                chromium_binary(),
                "--headless",
                "--no-sandbox",  # the suite runs as root in CI, where the sandbox refuses to start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().count("\n") >= 1, timeout=60,
                 message="chromium's DevTools port")
        self.port = int(port_file.read_text().splitlines()[0])
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="cdp", daemon=True)
        self._thread.start()
        self.page = Page(self)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the browser may be gone already
            self.run(self.page.disconnect(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        terminate(self.proc)
        shutil.rmtree(self.profile, ignore_errors=True)


def terminate(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, and SIGKILL after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class Page:
    """The browser's first tab."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self.dialogs: list[str] = []  # messages of alert/confirm/prompt dialogs opened (none expected)
        self.console_errors: list[str] = []
        browser.run(self._connect())

    async def _connect(self) -> None:
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{self.browser.port}/json/list") as resp:
            targets = await resp.json()
        target = next(t for t in targets if t.get("type") == "page")
        self._ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        for domain in ("Page", "Runtime", "Log"):
            await self._send(f"{domain}.enable", {})

    async def disconnect(self) -> None:
        self._reader.cancel()
        await self._ws.close()
        await self._session.close()

    async def _read(self) -> None:
        async for msg in self._ws:
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                    else:
                        fut.set_result(data.get("result") or {})
                continue
            method = data.get("method", "")
            params = data.get("params") or {}
            if method == "Page.javascriptDialogOpening":
                self.dialogs.append(str(params.get("message")))
                await self._ws.send_str(json.dumps({"id": next(self._ids), "method": "Page.handleJavaScriptDialog",
                                                    "params": {"accept": True}}))
            elif method == "Runtime.exceptionThrown":
                self.console_errors.append(json.dumps(params.get("exceptionDetails"))[:500])
            for name, fut in list(self._waiters):
                if name == method and not fut.done():
                    fut.set_result(params)
                    self._waiters.remove((name, fut))

    async def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        ident = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        return await fut

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.run(self._send(method, params or {}))

    async def _until_load(self, action: Coroutine[Any, Any, Any]) -> None:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append(("Page.loadEventFired", fut))
        await action
        await asyncio.wait_for(fut, CALL_TIMEOUT)

    def navigate(self, url: str) -> None:
        """Open ``url`` and return once its load event fired."""
        self.browser.run(self._until_load(self._send("Page.navigate", {"url": url})))

    def click_and_wait_load(self, selector: str) -> None:
        """Click the element (a form's submit button): returns once the page it leads to has loaded."""
        script = f"document.querySelector({json.dumps(selector)}).click()"
        self.browser.run(self._until_load(self._send("Runtime.evaluate", {"expression": script})))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float, message: str = "") -> Any:
        return wait_for(lambda: self.evaluate(expression), timeout=timeout, interval=0.2, message=message or expression)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params |= {"captureBeyondViewport": True,
                       "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}
        data = self.send("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def first_paint_and_weight(page: Page) -> dict[str, float]:
    """The page's paint timings and bytes over the wire, from the Performance API (Navigation and Resource
    Timing): first-paint/first-contentful-paint in ms since navigation start, transfer and decoded sizes."""
    script = """(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource');
      const paint = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
      return {
        first_paint_ms: paint['first-paint'] ?? -1,
        first_contentful_paint_ms: paint['first-contentful-paint'] ?? -1,
        dom_content_loaded_ms: nav.domContentLoadedEventEnd,
        load_ms: nav.loadEventEnd,
        document_bytes: nav.encodedBodySize,
        transfer_bytes: nav.encodedBodySize + res.reduce((a, r) => a + r.encodedBodySize, 0),
        decoded_bytes: nav.decodedBodySize + res.reduce((a, r) => a + r.decodedBodySize, 0),
        requests: 1 + res.length,
      };
    })()"""
    # Paint entries arrive once the first frame is drawn.
    figures: dict[str, float] = wait_for(
        lambda: (f := page.evaluate(script))["first_contentful_paint_ms"] >= 0 and f, timeout=10,
        message="a first contentful paint",
    )
    return figures
