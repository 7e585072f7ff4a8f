"""Open a report in real headless Chromium and check that it renders, offline, without errors.

Talks the DevTools protocol over Chromium's ``--remote-debugging-pipe`` (file descriptors
3 and 4, NUL-terminated JSON), so it needs nothing but Chromium itself: no driver, no
websocket library, no browser download. Used by ``nasseg report --check`` and the tests.

Example:
    >>> check = check_report("reports/skips/report.html", screenshot="reports/skips/artifacts/shot.png")
    >>> check.problems()        # doctest: +SKIP
    []
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasseg.errors import NassegError

__all__ = ["BrowserCheck", "FigureCheck", "check_report", "find_chromium"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         # WebGL (3D scatter, parallel coordinates) through the software rasteriser
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--remote-debugging-pipe"]

_ALLOWED_SCHEMES = ("file:", "data:", "about:", "blob:")

FIRST_SCREEN_HEIGHT = 900
"""Height of the viewport the report is opened in: its first screen (with ``width`` 1280)."""

_BOX_JS = """(() => {
  const e = document.querySelector(%s); if (!e) return null;
  const r = e.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
})()"""

_STATUS_JS = """(() => {
  const divs = Array.from(document.querySelectorAll('div.plotly-graph-div'));
  return {ready: document.readyState, plotly: typeof window.Plotly !== 'undefined',
          figures: divs.map(d => {
    const full = d._fullData || [];
    const points = full.map(t => {
      let n = 0;
      for (const k of ['x', 'y', 'z', 'values', 'r']) {
        const a = t[k]; if (a && typeof a.length === 'number') n = Math.max(n, a.length);
      }
      for (const dim of (t.dimensions || [])) {
        const a = dim.values; if (a && typeof a.length === 'number') n = Math.max(n, a.length);
      }
      return n;
    });
    const layout = d._fullLayout || {};
    return {id: d.id, rendered: !!d._fullLayout && d.querySelector('.main-svg') !== null,
            traces: full.length, points: points,
            title: (layout.title && layout.title.text) || '',
            gl_error: d.querySelector('.no-webgl') !== null};
  })};
})()"""


@dataclass
class FigureCheck:
    """One plotly figure as the browser sees it: its traces and data points per trace."""

    id: str
    title: str
    rendered: bool
    points: list[int]
    webgl_missing: bool = False

    @property
    def has_data(self) -> bool:
        """At least one trace with at least one data point."""
        return any(n > 0 for n in self.points)


@dataclass
class BrowserCheck:
    """What happened when Chromium opened the report."""

    url: str
    figures: list[FigureCheck] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    seconds: float = 0.0
    timed_out: bool = False
    boxes: dict[str, dict[str, float] | None] = field(default_factory=dict)
    """CSS selector -> the first match's ``{top, bottom, left, right}`` in CSS pixels of the
    first screen (``width`` x :data:`FIRST_SCREEN_HEIGHT`), ``None`` when nothing matches."""
    first_screen: Path | None = None

    def external_requests(self) -> list[str]:
        """Requests to anything but the file itself (``file:``, ``data:``, ``blob:``)."""
        return [u for u in self.requests if not u.startswith(_ALLOWED_SCHEMES)]

    def problems(self) -> list[str]:
        """Everything wrong, one line each; empty when the report is fine."""
        out = [f"JavaScript error: {e}" for e in self.page_errors]
        out += [f"console error: {e}" for e in self.console_errors]
        out += [f"network request: {u}" for u in self.external_requests()]
        out += [f"dialog opened: {d}" for d in self.dialogs]
        if self.timed_out:
            out.append("figures did not finish rendering in time")
        if not self.figures:
            out.append("no figure in the page")
        for f in self.figures:
            if not f.rendered:
                out.append(f"figure {f.id} ({f.title}) did not render")
            elif not f.has_data:
                out.append(f"figure {f.id} ({f.title}) holds no data")
            if f.webgl_missing:
                out.append(f"figure {f.id} ({f.title}) found no WebGL")
        return out


def find_chromium() -> str | None:
    """Debian's ``/usr/bin/chromium``, or a chromium/chrome on ``PATH``, or ``None``."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


class _DevTools:
    """A DevTools-protocol connection over the two pipes of ``--remote-debugging-pipe``."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self._w, self._r = write_fd, read_fd
        self._next = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._replies[-1] = {"closed": True}
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.events.put(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next not in self._replies:
                if -1 in self._replies:
                    raise NassegError(f"chromium closed the DevTools pipe during {method}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NassegError(f"chromium did not answer {method} within {timeout:.0f} s")
                self._cond.wait(left)
            reply = self._replies.pop(self._next)
        if "error" in reply:
            raise NassegError(f"chromium: {method} failed: {reply['error'].get('message')}")
        return reply.get("result", {})


def _launch(chromium: str, profile_dir: str) -> tuple[subprocess.Popen, _DevTools]:
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def child_fds() -> None:  # runs in the child: the pipes become fds 3 and 4
        a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=child_fds, close_fds=False, start_new_session=True)
    os.close(to_child_r)
    os.close(from_child_w)
    return proc, _DevTools(to_child_w, from_child_r)


def _stop(proc: subprocess.Popen, tools: _DevTools | None) -> None:
    if tools is not None:
        try:
            tools.call("Browser.close", timeout=5)
        except NassegError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:  # the browser's own helper processes, in the session this function started
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)


def _drain(tools: _DevTools, check: BrowserCheck, session: str) -> None:
    while True:
        try:
            ev = tools.events.get_nowait()
        except queue.Empty:
            return
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            check.page_errors.append((d.get("exception") or {}).get("description") or d.get("text", "?"))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            check.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                 for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            check.console_errors.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            check.requests.append(p.get("request", {}).get("url", ""))
        elif method == "Page.javascriptDialogOpening":
            check.dialogs.append(f"{p.get('type')}: {p.get('message')}")
            tools.call("Page.handleJavaScriptDialog", {"accept": False}, session)
        elif method == "Page.loadEventFired":
            check.__dict__["_loaded"] = True


def check_report(path: str | Path, *, screenshot: str | Path | None = None, chromium: str | None = None,
                 timeout: float = 60.0, width: int = 1280, measure: tuple[str, ...] = (),
                 first_screen: str | Path | None = None) -> BrowserCheck:
    """Open ``path`` in headless Chromium, wait for every plotly figure, collect problems.

    Waits until the page has loaded and every ``div.plotly-graph-div`` has rendered (or
    ``timeout`` passes), then lets the page settle for half a second more so that late
    errors are caught. Records JavaScript exceptions, console and log errors, every network
    request and any dialog (an ``alert`` would mean injected script).

    Args:
        path: the HTML file.
        screenshot: where to save a full-page PNG (``None`` = none).
        chromium: the browser binary (default: :func:`find_chromium`).
        timeout: seconds to wait for the figures.
        width: viewport width in pixels.
        measure: CSS selectors whose boxes to record (:attr:`BrowserCheck.boxes`), as laid
            out on the first screen.
        first_screen: where to save a PNG of the first screen only (what a reader sees
            before scrolling).

    Raises:
        NassegError: no Chromium, or it could not be driven.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise NassegError(f"{path}: no such report")
    binary = chromium or find_chromium()
    if binary is None:
        raise NassegError("no Chromium found (install Debian's 'chromium' package)")
    check = BrowserCheck(url=path.as_uri())
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nasseg-chromium-") as profile_dir:
        proc, tools = _launch(binary, profile_dir)
        try:
            target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.call(f"{domain}.enable", session=session)
            tools.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": FIRST_SCREEN_HEIGHT,
                                                              "deviceScaleFactor": 1, "mobile": False}, session)
            tools.call("Page.navigate", {"url": check.url}, session)
            deadline = time.monotonic() + timeout
            status: dict[str, Any] = {}
            while True:
                _drain(tools, check, session)
                status = tools.call("Runtime.evaluate", {"expression": _STATUS_JS, "returnByValue": True},
                                    session).get("result", {}).get("value") or {}
                figs = status.get("figures", [])
                done = (check.__dict__.get("_loaded") and status.get("ready") == "complete"
                        and figs and all(f["rendered"] for f in figs))
                if done or time.monotonic() > deadline:
                    check.timed_out = not done
                    break
                time.sleep(0.2)
            time.sleep(0.5)
            _drain(tools, check, session)
            status = tools.call("Runtime.evaluate", {"expression": _STATUS_JS, "returnByValue": True},
                                session).get("result", {}).get("value") or status
            check.figures = [FigureCheck(f["id"], f["title"], f["rendered"], list(f["points"]),
                                         f.get("gl_error", False)) for f in status.get("figures", [])]
            for selector in measure:
                check.boxes[selector] = tools.call("Runtime.evaluate", {
                    "expression": _BOX_JS % json.dumps(selector), "returnByValue": True},
                    session).get("result", {}).get("value")
            if first_screen is not None:
                shot = tools.call("Page.captureScreenshot", {"format": "png"}, session, timeout=60)
                check.first_screen = Path(first_screen)
                check.first_screen.parent.mkdir(parents=True, exist_ok=True)
                check.first_screen.write_bytes(base64.b64decode(shot["data"]))
            if screenshot is not None:
                check.screenshot = _screenshot(tools, session, Path(screenshot), width)
            _drain(tools, check, session)
        finally:
            _stop(proc, tools)
    check.__dict__.pop("_loaded", None)
    check.seconds = round(time.monotonic() - started, 2)
    return check


def _screenshot(tools: _DevTools, session: str, out: Path, width: int) -> Path:
    metrics = tools.call("Page.getLayoutMetrics", session=session)
    size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
    height = int(min(max(size.get("height", 900), 900), 20000))
    tools.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                      "deviceScaleFactor": 1, "mobile": False}, session)
    time.sleep(0.5)
    shot = tools.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session,
                      timeout=60)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    return out
