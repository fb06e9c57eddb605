"""A headless Chromium driven through chromedriver's W3C WebDriver HTTP API (stdlib only; no selenium).

`open_page(path)` loads a local HTML file with every network name unresolvable (an offline report must not
need the network) and returns a :class:`PageCheck`: console errors and failed resource loads (from the
browser log and from error listeners installed before any script of the page runs), the number of plotly
figures and how many of them drew, and the images that did not load.  `screenshot(path, png)` saves one.

Set ``TASKSCOPE_NO_BROWSER=1`` to say that no browser is wanted (the browser tests then skip); without it a
missing Chromium or chromedriver fails them (CI installs Debian's ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

NO_BROWSER_ENV = "TASKSCOPE_NO_BROWSER"
BINARIES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")

# installed before the page's own scripts: collects uncaught errors, failed loads (capture phase) and console.error
LISTENERS = """
window.__taskscope_errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) { window.__taskscope_errors.push('failed to load ' + (t.src || t.href)); }
  else { window.__taskscope_errors.push('uncaught ' + e.message); }
}, true);
window.addEventListener('unhandledrejection', function (e) {
  window.__taskscope_errors.push('unhandled rejection ' + e.reason);
});
var __taskscope_console_error = console.error;
console.error = function () {
  window.__taskscope_errors.push('console.error ' + Array.prototype.join.call(arguments, ' '));
  return __taskscope_console_error.apply(console, arguments);
};
"""

STATE = """
var figures = document.querySelectorAll('div.plotly-graph-div');
var drawn = Array.prototype.filter.call(figures, function (d) {
  return d.classList.contains('js-plotly-plot') && d.querySelector('svg.main-svg') !== null; });
var images = Array.prototype.filter.call(document.images, function (i) { return !(i.complete && i.naturalWidth > 0); });
return {ready: document.readyState, errors: window.__taskscope_errors || ['listeners missing'],
        figures: figures.length, drawn: drawn.length, title: document.title,
        broken_images: images.map(function (i) { return (i.src || '').slice(0, 80); })};
"""


def browser_binary() -> str | None:
    return next((b for b in BINARIES if os.access(b, os.X_OK)), None)


def browser_wanted() -> bool:
    return os.environ.get(NO_BROWSER_ENV, "") in ("", "0")


@dataclass
class PageCheck:
    title: str
    figures: int
    drawn: int
    errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """One chromedriver process and one browser session."""

    def __init__(self, width: int = 1280, height: int = 900):
        binary, driver = browser_binary(), shutil.which("chromedriver")
        if binary is None or driver is None:
            raise RuntimeError("headless Chromium not found: apt-get install -y chromium chromium-driver "
                               f"(or set {NO_BROWSER_ENV}=1 to skip the browser tests locally)")
        self.port = _free_port()
        self.process = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self._call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        options = {"binary": binary, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--allow-file-access-from-files"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options,
                                                 "goog:loggingPrefs": {"browser": "ALL"}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 120):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["value"]

    def command(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def cdp(self, cmd: str, params: dict):
        return self.command("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def script(self, source: str):
        return self.command("POST", "/execute/sync", {"script": source, "args": []})

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.process.terminate()
            self.process.wait(timeout=30)


@contextmanager
def driver(width: int = 1280, height: int = 900):
    d = Driver(width, height)
    try:
        yield d
    finally:
        d.close()


def check_page(d: Driver, path: Path, settle_s: float = 1.0) -> PageCheck:
    """Load ``path`` in ``d`` and collect what :class:`PageCheck` holds (browser log: SEVERE entries)."""
    d.cdp("Page.addScriptToEvaluateOnNewDocument", {"source": LISTENERS})
    d.command("POST", "/url", {"url": Path(path).resolve().as_uri()})
    deadline = time.time() + 60
    state = d.script(STATE)
    while (state["ready"] != "complete" or state["drawn"] < state["figures"]) and time.time() < deadline:
        time.sleep(0.2)
        state = d.script(STATE)
    time.sleep(settle_s)  # late errors (plotly draws asynchronously)
    state = d.script(STATE)
    log = d.command("POST", "/se/log", {"type": "browser"})
    errors = list(state["errors"]) + [f"browser log: {e['message']}" for e in log if e.get("level") == "SEVERE"]
    return PageCheck(title=state["title"], figures=state["figures"], drawn=state["drawn"], errors=errors,
                     broken_images=state["broken_images"])


def screenshot(d: Driver, path: Path, png: Path, width: int = 1280, height: int | None = None) -> Path:
    """Save a PNG of ``path`` (the first ``height`` CSS pixels, default the whole page)."""
    check_page(d, path, settle_s=0.5)
    full = d.script("return document.documentElement.scrollHeight")
    d.cdp("Emulation.setDeviceMetricsOverride", {"width": width, "height": min(height or full, full),
                                                "deviceScaleFactor": 1, "mobile": False})
    time.sleep(0.5)
    png.write_bytes(base64.b64decode(d.command("GET", "/screenshot")))
    return png


def main(argv: list[str] | None = None) -> None:
    """``python tests/browser.py REPORT.html OUT.png [WIDTH HEIGHT]``: a screenshot of the report's top part
    (how docs/img/report_*.png are made; see the README)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    width, height = (int(args[2]), int(args[3])) if len(args) >= 4 else (1280, 1800)
    with driver(width, 900) as d:
        result = check_page(d, Path(args[0]))
        if result.errors:
            raise SystemExit(f"{args[0]}: " + "; ".join(result.errors))
        screenshot(d, Path(args[0]), Path(args[1]), width=width, height=height)


if __name__ == "__main__":
    main()
