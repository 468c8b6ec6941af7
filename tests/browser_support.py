"""Open an HTML report in headless Chromium and check that it reads well (test support).

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (file
descriptors 3 and 4, NUL-separated JSON): no client library and no port. A window narrower
than 500 px cannot be had from ``--window-size`` in headless mode, so the viewport is set with
``Emulation.setDeviceMetricsOverride`` (what DevTools' device toolbar does).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Seconds any single protocol answer may take (a report page loads in well under one).
ANSWER_TIMEOUT_S = 60.0

# Measured in the page after every image decoded: document overflow, each table's box against
# the card / body it sits in, every <img>, and what comes first in reading order.
PROBE = """
(async () => {
  await Promise.all([...document.images].map(i => i.decode().catch(() => null)));
  const doc = document.documentElement;
  const right = el => el.getBoundingClientRect().right;
  const spill = [];
  for (const table of document.querySelectorAll('table')) {
    const box = table.closest('.table-scroll');
    const holder = (box || table).parentElement.closest('.card, details, body');
    const outer = box || table;
    if (right(outer) > right(holder) + 0.5) {
      spill.push((holder.querySelector('h2, summary') || holder).textContent.trim().slice(0, 60));
    }
  }
  const order = [...document.querySelectorAll('.verdict, figure, details, table')]
    .map(el => el.matches('.verdict') ? 'verdict' : el.tagName.toLowerCase());
  return {
    innerWidth: window.innerWidth,
    scrollWidth: doc.scrollWidth,
    unscrolledTables: [...document.querySelectorAll('table')]
      .filter(t => !t.parentElement.classList.contains('table-scroll')).length,
    spill,
    images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth})),
    order,
  };
})()
"""


def find_chromium() -> str | None:
    """The Chromium binary on PATH, or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _high_pipe(reader: bool) -> tuple[int, int]:
    """A pipe whose end for Chromium (read end if ``reader``) is above fd 9, so that placing
    it on 3 or 4 in the child overwrites neither end."""
    read, write = os.pipe()
    child = read if reader else write
    high = fcntl.fcntl(child, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(child)
    return (high, write) if reader else (read, high)


class _Pipe:
    """One DevTools protocol connection over Chromium's debugging pipe."""

    def __init__(self, binary: str) -> None:
        to_chrome_r, self._to_chrome = _high_pipe(reader=True)
        self._from_chrome, from_chrome_w = _high_pipe(reader=False)
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")

        # Chromium reads commands on fd 3 and answers on fd 4: the shell puts the pipe ends there
        command = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-extensions", "--hide-scrollbars",
                   f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
                   "about:blank"]  # fmt: skip
        self._process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', "sh", *command],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(to_chrome_r, from_chrome_w),
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the debugging pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self._profile.cleanup()


def measure(binary: str, page: Path, widths: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    """:data:`PROBE` of ``page`` (a local HTML file) at each viewport width (800 px tall)."""
    pipe = _Pipe(binary)
    try:
        target = pipe.send("Target.createTarget", url="about:blank")["targetId"]
        session = pipe.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        pipe.send("Page.enable", session)
        measured = {}
        for width in widths:
            pipe.send("Emulation.setDeviceMetricsOverride", session, width=width, height=800,
                      deviceScaleFactor=1, mobile=width < 600)  # fmt: skip
            pipe.send("Page.navigate", session, url=page.resolve().as_uri())
            pipe.wait_event("Page.loadEventFired")
            result = pipe.send("Runtime.evaluate", session, expression=PROBE,
                               awaitPromise=True, returnByValue=True)  # fmt: skip
            if "exceptionDetails" in result:
                raise RuntimeError(f"probe failed: {result['exceptionDetails']}")
            measured[width] = result["result"]["value"]
        return measured
    finally:
        pipe.close()


WIDTHS = (1280, 390)
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)


def assert_reads_well(page: Path, figures: int) -> None:
    """``page`` at 1280 and 390 px: no horizontal overflow, every table in its scroll box and
    inside its card, ``figures`` images all loaded, the headline verdicts before anything else."""
    assert CHROMIUM is not None
    for width, probe in measure(CHROMIUM, page, WIDTHS).items():
        where = f"{page.name} at {width} px"
        # a mobile viewport grows to the document's width, so both must still be the window's
        assert probe["innerWidth"] == width, (where, probe)
        assert probe["scrollWidth"] <= width, (where, probe)
        assert probe["unscrolledTables"] == 0 and probe["spill"] == [], (where, probe)
        assert len(probe["images"]) == figures, (where, probe["images"])
        assert all(i["complete"] and i["width"] > 0 for i in probe["images"]), where
        order = probe["order"]
        assert order and order[0] == "verdict", (where, order)
        # every verdict of the headline comes before the first figure or folded table
        later = [i for i, kind in enumerate(order) if kind in ("figure", "details")]
        assert not later or max(i for i, k in enumerate(order) if k == "verdict") < later[0]
