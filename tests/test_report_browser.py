"""report.html in a real browser: headless Chromium loads it offline, every image decodes, the console
stays clean, nothing is fetched from elsewhere, and a screenshot is taken.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ending
in NUL on fds 3 and 4), which needs nothing beyond the standard library.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from synthetic_runs import KNOWN, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
]

IMAGES_DECODE = """Promise.all([...document.images].map(img => img.decode().then(
    () => ({src: img.src.slice(0, 40), complete: img.complete, width: img.naturalWidth}),
    () => ({src: img.src.slice(0, 40), complete: false, width: 0}))))"""


class Browser:
    """Just enough of a DevTools client: commands, and the events collected while waiting."""

    def __init__(self, profile: Path, timeout: float = 60):
        self.timeout, self.events, self._next_id, self._buf = timeout, [], 0, b""
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        # Chromium reads commands on fd 3 and answers on fd 4; bash puts the pipe ends there.
        self.proc = subprocess.Popen(
            [
                "bash",
                "-c",
                f'exec "$0" "$@" 3<&{cmd_r} 4>&{res_w}',
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(cmd_r, res_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(cmd_r)
        os.close(res_w)
        self.session = None

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        reply = self._until(lambda m: m.get("id") == msg["id"])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait_event(self, method: str) -> dict:
        return self._until(lambda m: m.get("method") == method)

    def _until(self, wanted) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "method" in msg:
                    self.events.append(msg)
                if wanted(msg):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._res_r], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._res_r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited ({self.proc.poll()})")
            self._buf += chunk

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"]["value"]

    def screenshot(self, path: Path) -> None:
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, error log entries and any request that leaves the file."""
        found = []
        for e in self.events:
            m, p = e["method"], e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                found.append(f"console.{p['type']}: {p['args']}")
            elif m == "Runtime.exceptionThrown":
                found.append(f"exception: {p['exceptionDetails']}")
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                found.append(f"log: {p['entry']['text']}")
            elif m == "Network.requestWillBeSent" and not p["request"]["url"].startswith(("file:", "data:")):
                found.append(f"network request: {p['request']['url']}")
        return found

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._res_r)


# Each wide table's own width against the width its box shows (wider: part of it is behind a scroll bar).
TABLE_WIDTHS = """[...document.querySelectorAll('div.wide > table')].map(t => ({
    id: t.parentElement.previousElementSibling.id, table: t.scrollWidth, shown: t.parentElement.clientWidth}))"""


def check_in_browser(html: Path, screenshot: Path, profile: Path) -> tuple[list[dict], list[str], list[dict]]:
    """(every image's decode result, every problem seen, the wide tables' widths) for `html`, with a
    full-page screenshot (the window is 1280 px wide: the page is as wide as at 1400 px)."""
    browser = Browser(profile)
    try:
        browser.open(html.resolve().as_uri())
        images = browser.evaluate(IMAGES_DECODE)
        tables = browser.evaluate(TABLE_WIDTHS)
        browser.screenshot(screenshot)
        return images, browser.problems(), tables
    finally:
        browser.close()


def test_report_loads_offline_with_every_image_and_a_clean_console(tmp_path):
    finals = {k: v[:3] for k, v in KNOWN.items()}
    html = build_report(tmp_path, finals, diverged={("lr_x2", 2): 5}, draw=True)
    shot = tmp_path / "report.png"
    images, problems, tables = check_in_browser(html, shot, tmp_path / "profile")
    assert problems == []
    assert len(images) == 4, images  # accuracy, loss, lr, final accuracy
    variants = next(t for t in tables if t["id"] == "variants")
    assert variants["table"] <= variants["shown"], tables  # every column in view, none behind a scroll bar
    assert all(img["complete"] and img["width"] > 0 for img in images), images
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


def test_the_check_catches_a_broken_image_and_a_console_error(tmp_path):
    """The browser check itself can fail: a truncated image and a script error are both reported."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>'
        '<img src="data:image/png;base64,iVBORw0KGgo="><script>console.error("boom")</script>'
        "</body></html>"
    )
    images, problems, _ = check_in_browser(page, tmp_path / "broken.png", tmp_path / "profile")
    assert images and not images[0]["width"]
    assert any("boom" in p for p in problems), problems
