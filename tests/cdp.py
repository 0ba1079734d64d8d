"""A tiny Chrome DevTools Protocol driver for headless Chromium (websockets, no browser download).

Opens a page, records console errors, uncaught exceptions, log entries and every network
request, evaluates JavaScript and takes full-page screenshots.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    """Path of a Chromium binary: $CHROMIUM, else the first on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageEvents:
    """What the page did: console errors, exceptions, log entries, requests."""

    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [*self.console_errors, *self.exceptions, *self.log_errors]


class Chromium:
    """One headless Chromium process with one page, driven over CDP."""

    def __init__(self, binary: str, width: int = 1400, height: int = 900) -> None:
        self._profile = tempfile.mkdtemp(prefix="strava-elt-chromium-")
        # stderr to a file, not a pipe: a full pipe would block the browser.
        self._log = Path(self._profile) / "chromium.log"
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    binary,
                    *FLAGS,
                    f"--user-data-dir={self._profile}/profile",
                    f"--window-size={width},{height}",
                    "about:blank",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._ids = itertools.count(1)
        self.events = PageEvents()
        self._ws = self._connect(self._wait_for_endpoint())
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.resize(width, height)

    # --- plumbing -------------------------------------------------------------------

    def _wait_for_endpoint(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self._log.read_text(encoding="utf-8", errors="replace")
            match = re.search(r"DevTools listening on (ws://\S+)", text)
            if match:
                return match.group(1)
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        raise RuntimeError("Chromium did not start its DevTools endpoint:\n" + text[-2000:])

    @staticmethod
    def _connect(url: str) -> ClientConnection:
        return connect(url, max_size=None, open_timeout=20)

    def _send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        while True:
            reply = json.loads(self._ws.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"CDP {method} failed: {reply['error']}")
                return reply.get("result", {})
            self._record(reply)

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command to the page's session and wait for its reply."""
        return self._send(method, params, self._session)

    def _record(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            self.events.console_errors.append(" ".join(str(a.get("value", a.get("description"))) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.events.exceptions.append(details.get("exception", {}).get("description") or details.get("text", "?"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.events.log_errors.append(params["entry"].get("text", "?"))
        elif method == "Network.requestWillBeSent":
            self.events.requests.append(params.get("request", {}).get("url", "?"))

    def pump(self, seconds: float) -> None:
        """Read events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self._record(json.loads(self._ws.recv(timeout=left)))
            except TimeoutError:
                return

    # --- page -----------------------------------------------------------------------

    def resize(self, width: int, height: int) -> None:
        """Set the viewport (CSS pixels, device scale 1)."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def open(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page; return its JSON value."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll ``expression`` until it is truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            self.pump(0.1)
        raise TimeoutError(f"waited {timeout}s for {expression}")

    def next_frames(self, frames: int = 3) -> None:
        """Wait until the page has produced ``frames`` animation frames (paints committed)."""
        self.evaluate(
            f"new Promise(function (done) {{ var n = {int(frames)}; (function tick() {{"
            " if (n-- <= 0) { done(true); } else { requestAnimationFrame(tick); } })(); })"
        )

    def screenshot(self, path: Path, width: int = 1400) -> Path:
        """Save a full-page PNG."""
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.resize(width, height)
        self.pump(0.3)  # let Chart.js see the new size
        self.next_frames()
        data = self.send("Page.captureScreenshot", {"format": "png", "fromSurface": True})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Stop the browser (this process only) and remove its profile."""
        try:
            if getattr(self, "_ws", None) is not None:
                self._ws.close()
        finally:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
