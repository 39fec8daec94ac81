"""ferjax's jsPsych plugin in a real jsPsych timeline, in headless Chromium, served offline from the npm install.

The example timeline (js/example: jsPsych's own external-html consent, browser-check, preload and
fullscreen plugins, then ferjax's reveal-click trials driven by ferjax's server) runs for one participant;
ferjax's built-in page runs the same clicks for another. Both exports must hold exactly the clicked
pixels, trial by trial, and jsPsych's own data the same coordinates and choices. The browser may reach
127.0.0.1 only, and every file it loads comes from ferjax's server.
"""

import sqlite3
from pathlib import Path

import pytest
from conftest import missing_reference
from test_experiment_browser import (
    _browser_installed,  # noqa: F401
    click_pixel,
    trial_ready,
    wait,
)
from test_experiment_online import chromium

from ferjax.people.clicklogs import load_logs
from ferjax.people.experiment.db import Store
from ferjax.people.experiment.demo import make_stimuli
from ferjax.people.experiment.design import read_trials
from ferjax.people.experiment.export import export
from ferjax.people.experiment.loadcheck import free_port, start_server, stop

JS = Path(__file__).resolve().parents[1] / "js"
PLAN = [[(10, 20), (128, 128)], [(255, 0)], [(60, 70), (100, 200), (0, 255)], []]


@pytest.fixture(autouse=True)
def _jspsych_installed():
    if not (JS / "node_modules" / "jspsych" / "dist" / "index.browser.min.js").is_file():
        missing_reference("needs `npm ci --prefix js` (jsPsych from npm)")


def click_canvas(d, x, y):
    """A real mouse press at the centre of frame pixel (x, y) of the plugin's canvas."""
    r = d.execute_script("const r = document.querySelector('.ferjax-reveal-canvas').getBoundingClientRect();"
                         "return [r.left, r.top, r.width];")
    assert r[2] == 256
    for kind in ("mousePressed", "mouseReleased"):
        d.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": kind, "x": r[0] + x + 0.5, "y": r[1] + y + 0.5,
                                                       "button": "left", "clickCount": 1})


def schedule(db, token):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return c.execute("SELECT t.idx, t.block, t.kind, t.filename FROM trials t JOIN participants p "
                         "ON p.id = t.participant WHERE p.token = ? ORDER BY t.idx", (token,)).fetchall()


def run_jspsych(d, base, token, sched):
    d.get(f"{base}/jspsych/example/index.html?token={token}")
    wait(d, "return document.getElementById('consent-box') !== null")
    d.find_element("id", "consent-box").click()
    d.find_element("id", "consent-agree").click()
    wait(d, "return document.getElementById('jspsych-fullscreen-btn') !== null", 30)  # checked and preloaded
    d.find_element("id", "jspsych-fullscreen-btn").click()
    for k, (idx, block, kind, name) in enumerate(sched):
        ready = ("const r = document.querySelector('.ferjax-reveal'); "
                 f"return r !== null && r.dataset.ready === '1' && r.dataset.trial === '{idx}'")
        wait(d, f"return document.getElementById('pause') !== null || (() => {{{ready}}})()", 30)
        if d.find_elements("id", "pause"):
            d.find_element("css selector", "#jspsych-html-button-response-btngroup button").click()
            wait(d, ready, 30)
        for x, y in PLAN[k % len(PLAN)]:
            click_canvas(d, x, y)
        d.find_elements("css selector", ".ferjax-reveal-buttons button")[k % 2].click()
    wait(d, "return document.body.dataset.done === '1'", 30)
    return d.execute_script("return window.__results")


def run_builtin(d, base, token, sched):
    d.get(f"{base}/p/{token}")
    wait(d, "return document.body.dataset.screen === 'message'", 30)
    d.find_element("id", "go").click()
    for k, (idx, block, kind, name) in enumerate(sched):
        trial_ready(d, idx)
        for x, y in PLAN[k % len(PLAN)]:
            click_pixel(d, x, y)
        wait(d, "return document.body.dataset.pending === '0'")
        d.find_element("id", "right" if k % 2 else "left").click()
        if k + 1 < len(sched) and sched[k + 1][1] != block:
            wait(d, "return document.body.dataset.screen === 'message'")
            d.find_element("id", "go").click()
    wait(d, "return document.body.dataset.done === '1'")


def test_jspsych_timeline_clicks_match_the_builtin_page(tmp_path):
    stim = tmp_path / "stim"
    tpath = make_stimuli(stim, per_class=1)
    db = tmp_path / "exp.sqlite"
    store = Store(db)
    (_, a), (_, b) = store.add_participants(2, read_trials(stim, tpath), practice=1, sessions=2, seed=3, catch_every=4)
    store.close()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(stim, tpath, db, port, "--jspsych", JS)
    d = chromium(tmp_path)
    try:
        data = run_jspsych(d, base, a, schedule(db, a))
        files = d.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
        run_builtin(d, base, b, schedule(db, b))
    finally:
        d.quit()
        stop(proc)
    assert files and all(f.startswith(base) for f in files)  # offline: nothing from any other host
    assert any("/jspsych/node_modules/jspsych/dist/" in f for f in files)
    kinds = [t["trial_type"] for t in data]
    assert kinds[:4] == ["external-html", "browser-check", "preload", "fullscreen"]
    assert data[2]["success"] and data[3]["success"] and data[1]["width"] >= 360
    reveal = [t for t in data if t["trial_type"] == "ferjax-reveal-click"]
    sched_a = schedule(db, a)
    assert [t["ferjax_trial"] for t in reveal] == [s[0] for s in sched_a] and not any("post_error" in t for t in reveal)
    assert [[(c["x"], c["y"]) for c in t["clicks"]] for t in reveal] == [PLAN[k % 4] for k in range(len(sched_a))]
    with sqlite3.connect(db) as c:
        chosen = dict(c.execute("SELECT t.idx, t.chosen FROM trials t JOIN participants p ON p.id = t.participant "
                                "WHERE p.token = ?", (a,)).fetchall())
    assert chosen == {t["ferjax_trial"]: t["chosen"] for t in reveal}
    export(db, tmp_path / "out")
    trials, clicks = load_logs(tmp_path / "out")
    per = {}
    for who, sched in (("P001", sched_a), ("P002", schedule(db, b))):
        order = {s[3]: k for k, s in enumerate(sched) if s[1] > 0 and s[2] == "stimulus"}
        got = clicks[clicks["participant"] == who].groupby("filename")
        per[who] = {order[f]: [(int(r.x), int(r.y)) for r in g.sort_values("order").itertuples()] for f, g in got}
        assert per[who] == {k: PLAN[k % 4] for k in order.values() if PLAN[k % 4]}
    common = per["P001"].keys() & per["P002"].keys()  # the same clicks land on the same pixels from both pages
    assert len(common) >= 4 and all(per["P001"][k] == per["P002"][k] for k in common)
