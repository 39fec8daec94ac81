"""End to end in a real headless browser (Debian's chromium + chromedriver, driven by Selenium).

A scripted participant reads the instructions, does the practice and a session by
clicking at known pixels (one trial at 2x CSS zoom, one trial reloaded halfway), and
the export must hold exactly those clicks and choices; their rasterized map must
equal the hand-computed disks. Set FERJAX_SCREENSHOT=path to save a trial's screenshot.
"""

import os
import shutil
import sqlite3
import tempfile

import numpy as np
import pytest
from conftest import missing_reference
from selenium import webdriver

from ferjax.people.clicklogs import load_logs
from ferjax.people.clickmaps import rasterize
from ferjax.people.experiment.db import Store
from ferjax.people.experiment.demo import make_stimuli
from ferjax.people.experiment.design import read_trials
from ferjax.people.experiment.export import export
from ferjax.people.experiment.loadcheck import free_port, start_server, stop

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(autouse=True)
def _browser_installed():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        missing_reference("needs apt-get install chromium chromium-driver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=700,700"]
# clicks per trial, in display-frame pixels (x = column, y = row)
CLICKS = [[(10, 20), (128, 128)],                 # practice (not exported)
          [(60, 70), (100, 200), (255, 0)],       # main 1
          [(30, 30)],                             # main 2, at 2x CSS zoom
          [],                                     # main 3, no click
          [(200, 40), (201, 41)]]                 # main 4, after a reload that dropped (5, 5)


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ferjax-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(f)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait(driver, script, timeout=15):
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda d: d.execute_script(script))
    except Exception:
        state = driver.execute_script("return [JSON.stringify(document.body.dataset),"
                                      " document.getElementById('status').textContent]")
        raise AssertionError(f"timed out waiting for {script!r}; page: {state}") from None


def click_pixel(driver, x, y, zoom=1):
    """A real mouse press at the centre of frame pixel (x, y), through the DevTools input domain."""
    r = driver.execute_script("const f = document.getElementById('face'); f.scrollIntoView({block: 'nearest'});"
                              "const r = f.getBoundingClientRect(); return [r.left, r.top];")
    px, py = r[0] + (x + 0.5) * zoom, r[1] + (y + 0.5) * zoom
    for kind in ("mousePressed", "mouseReleased"):
        driver.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": kind, "x": px, "y": py, "button": "left",
                                                            "clickCount": 1})


def trial_ready(driver, idx):
    wait(driver, f"return document.body.dataset.ready === '1' && document.body.dataset.trial === '{idx}'")


def test_participant_in_browser(tmp_path, browser):
    stim = tmp_path / "stim"
    tpath = make_stimuli(stim, per_class=1)
    db = tmp_path / "exp.sqlite"
    store = Store(db)
    (_, token), = store.add_participants(1, read_trials(stim, tpath), practice=1, sessions=2, seed=3)
    store.close()
    with sqlite3.connect(db) as c:
        sched = c.execute("SELECT idx, filename, true_label, foil_label FROM trials ORDER BY idx").fetchall()
    port = free_port()
    proc = start_server(stim, tpath, db, port)
    try:
        d = browser
        d.get(f"http://127.0.0.1:{port}/p/{token}")
        wait(d, "return document.body.dataset.screen === 'message'")
        assert "blur" in d.find_element("id", "text").text
        d.find_element("id", "go").click()
        want = []
        for idx, clicks in enumerate(CLICKS):
            trial_ready(d, idx)
            zoom = 2 if idx == 2 else 1
            d.execute_script(f"const s = document.getElementById('face').style; s.width = s.height = '{256 * zoom}px'")
            if idx == 4:  # two clicks, then the page is reloaded: the trial restarts
                before = int(d.execute_script("return document.body.dataset.acked"))
                click_pixel(d, 5, 5)
                wait(d, f"return Number(document.body.dataset.acked) > {before}")
                d.refresh()
                trial_ready(d, idx)
            for x, y in clicks:
                click_pixel(d, x, y, zoom)
            wait(d, "return document.body.dataset.pending === '0'")
            if idx == 1 and os.environ.get("FERJAX_SCREENSHOT"):
                d.save_screenshot(os.environ["FERJAX_SCREENSHOT"])
            _, name, true, foil = sched[idx]
            label = true if idx % 2 else foil
            buttons = {int(b.get_attribute("data-label")): b for b in d.find_elements("css selector", ".choices button")}
            assert set(buttons) == {true, foil}
            assert buttons[true].text in ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
            buttons[label].click()
            if idx == 0:
                wait(d, "return document.body.dataset.screen === 'message'")
                assert "practice is over" in d.find_element("id", "text").text
                d.find_element("id", "go").click()
            else:
                want.append((name, true, foil, label, label == true, len(clicks), clicks))
        wait(d, "return document.body.dataset.screen === 'message'")  # the break between sessions
        assert "Session 1 of 2 is done" in d.find_element("id", "text").text
        d.find_element("id", "go").click()
        trial_ready(d, 5)
    finally:
        stop(proc)
    with sqlite3.connect(db) as c:  # the reloaded attempt's click stays in the database, flagged
        assert c.execute("SELECT idx, x, y FROM clicks WHERE interrupted = 1").fetchall() == [(4, 5.0, 5.0)]
    export(db, tmp_path / "out")
    trials, clicks = load_logs(tmp_path / "out")
    got = [(r.filename, r.true, r.foil, r.chosen, r.correct, r.count) for r in trials.itertuples()]
    assert got == [w[:6] for w in want]
    assert clicks[["filename", "x", "y", "order"]].values.tolist() == [
        [w[0], x, y, k + 1] for w in want for k, (x, y) in enumerate(w[6])]
    assert (clicks["time"] >= 0).all() and (clicks.groupby("filename")["time"].min() == 0).all()
    assert (trials["time"] >= 0).all()
    maps, names = rasterize(trials, clicks, radius=15)
    r, c = np.mgrid[:256, :256]
    expected = {w[0]: np.zeros((256, 256), np.float32) for w in want}
    for w in want:
        for x, y in w[6]:
            expected[w[0]] = np.maximum(expected[w[0]], ((c - x) ** 2 + (r - y) ** 2 < 15**2).astype(np.float32))
    assert names == sorted(expected)
    for m, n in zip(maps, names):
        np.testing.assert_array_equal(m, expected[n])
