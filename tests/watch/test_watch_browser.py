"""`xbarlab watch` in headless Chromium: the page follows a session that writes its log while
the test watches, from before the file exists to the end of the run.

Values are read from the browser's copy of the Bokeh document (what the page draws), and
compared with what the log holds at each gate of the session (read with `LogReader`). The
screenshot must be a real picture; with XBARLAB_WATCH_SCREENSHOT set, it is also saved there
(docs/watch.png comes from this test).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.watch.sessions import PARAMS, SHAPE, GatedSession
from xbarlab.config import PatternTarget
from xbarlab.log.reader import LogReader
from xbarlab.protocols.patterns import target_map

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs chromium and chromedriver (Debian: chromium chromium-driver)"),
]
webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("bokeh")

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900"]
PROGRESS = ("return Bokeh.documents.length ? "
            "Bokeh.documents[0].get_model_by_name('progress').text : null")
HEADER = "return Bokeh.documents[0].get_model_by_name('header').text"
MAP = "return Array.from(Bokeh.documents[0].get_model_by_name('gmap').data.g)"


@pytest.fixture
def watch_server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """`xbarlab watch` on a free loopback port, for a log that does not exist yet."""
    log = tmp_path / "session.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xbarlab.cli.main", "watch", str(log), "--port", "0",
         "--no-browser", "--poll", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    box: dict[str, str] = {}
    reader = threading.Thread(target=lambda: box.setdefault("line", proc.stdout.readline()),
                              daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(120)
    m = re.search(r"http://\S+", box.get("line", ""))
    if m is None:
        proc.kill()
        pytest.fail(f"no URL from xbarlab watch: {box.get('line')!r} {proc.stderr.read()!r}")  # type: ignore[union-attr]
    try:
        yield m[0].rstrip("/") + "/", log, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        opts.add_argument(flag)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _until(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the page may still be loading
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    pytest.fail(f"page never showed {what}; last: {last!r}")


def _number(text: str, label: str) -> tuple[int, ...]:
    m = re.search(rf"{label}: (\d+)(?: / (\d+))?", text)
    assert m, (label, text)
    return tuple(int(x) for x in m.groups() if x is not None)


def _page_matches_log(driver: Any, log: Path, cells: int) -> str:
    """Wait until the page shows the log as it is now; check the numbers; the progress line."""
    with LogReader(log) as r:
        ev = r.events_array()
        g = r.final_conductances()
    n_ops = int(np.sum(np.isin(ev["kind"].astype(int), [0, 1, 2])))  # read, pulse, mvm
    def shown_map() -> np.ndarray:
        return np.array(driver.execute_script(MAP), dtype=float).reshape(SHAPE)

    # the progress line and the map are separate document changes: wait for both
    text = _until(f"{n_ops} operations and the log's map", lambda: (
        t if (t := driver.execute_script(PROGRESS)) and f"operations: {n_ops} " in t
        and np.allclose(shown_map(), g * 1e6, rtol=1e-12, atol=0, equal_nan=True) else None))
    assert _number(text, "cells read") == (cells, SHAPE[0] * SHAPE[1])
    shown = shown_map()
    np.testing.assert_allclose(shown, g * 1e6, rtol=1e-12)  # µS, NaN where not read yet
    assert int(np.isfinite(shown).sum()) == cells
    return str(text)


def _png_is_a_picture(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as im:
        assert im.size[0] >= 1000 and im.size[1] >= 700, im.size
        rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
    colours = np.unique(rgb.reshape(-1, 3) @ np.array([1 << 16, 1 << 8, 1]))
    assert len(colours) > 200  # a map, traces, text: not a blank or single-colour page
    assert rgb.std() > 20
    # the conductance map is drawn with Viridis: its purple/yellow must be on the page
    dark = (rgb[..., 0] < 90) & (rgb[..., 1] < 40) & (rgb[..., 2] > 70)
    assert dark.sum() > 2000


def test_page_follows_a_running_session(watch_server: Any, browser: Any,
                                        tmp_path: Path) -> None:
    url, log, proc = watch_server
    browser.get(url)
    waiting = _until("the waiting state", lambda: browser.execute_script(PROGRESS))
    assert "waiting" in waiting and not log.exists()

    session = GatedSession(log, gates=(8, 24))
    session.start()
    try:
        assert session.wait_gate() == 8
        first = _page_matches_log(browser, log, 8)
        assert _number(first, "cells programmed") == (8, 64)
        session.release()
        assert session.wait_gate() == 24
        second = _page_matches_log(browser, log, 24)
        assert _number(second, "operations") > _number(first, "operations")
        # select cell (1, 2) of the map, as a tap does: the server draws its trace
        browser.execute_script(
            "Bokeh.documents[0].get_model_by_name('gmap').selected.indices = [10]")
        trace = _until("the trace of cell (1, 2)", lambda: browser.execute_script(
            "const t = Bokeh.documents[0].get_model_by_name('traces').data;"
            "return t.cell.length && t.cell[0] === '(1, 2)' ? Array.from(t.ys[0]) : null"))
        with LogReader(log) as r:
            frame = r.measurements()
        reads = frame[(frame["row"] == 1) & (frame["col"] == 2) & (frame["kind"] == "read")]
        assert len(reads) > 2
        np.testing.assert_allclose(trace, reads["conductance"].to_numpy() * 1e6, rtol=1e-12)
        session.release()
        session.join(120)
    finally:
        session.release()
        session.join(120)
    assert session.error is None and session.result is not None
    with LogReader(log) as r:
        status = r.status
    assert status in ("partial", "success", "programmed")
    _until(f"the end of the run ({status})",
           lambda: f"<b>{status}" in browser.execute_script(HEADER))
    final = _page_matches_log(browser, log, 64)
    with LogReader(log) as r:
        g = r.final_conductances()
    targets = target_map(PatternTarget(), SHAPE)
    in_tol = int(np.sum(np.abs(g - targets) <= PARAMS.tolerance * targets))
    assert _number(final, r"in tolerance \(±5\.0%\)") == (in_tol, 64)
    assert _number(final, "compliance hits")[0] > 0
    rows = browser.execute_script(
        "return Bokeh.documents[0].get_model_by_name('events').data.kind.length")
    assert rows > 0

    shot = tmp_path / "watch.png"
    assert browser.save_screenshot(str(shot))
    _png_is_a_picture(shot)
    if os.environ.get("XBARLAB_WATCH_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["XBARLAB_WATCH_SCREENSHOT"])

    proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
    assert proc.wait(90) == 0
    assert "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
