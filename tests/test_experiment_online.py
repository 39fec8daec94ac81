"""An online study end to end in a real headless browser (Debian's chromium + chromedriver, Selenium).

From a Prolific-style study link: one person declines consent (nothing but a count is stored); another
agrees, meets the browser check with a window too small, enlarges it, waits for the preloading, does the
practice and every trial, attention checks included, reloads mid-trial and reopens the study link
mid-study (both resume at the trial), reads the debriefing and is redirected to the completion URL with
the configured code. Opening the link again after that shows "already done" and runs nothing. The export
then holds exactly the acknowledged clicks and choices, and the Psych-DS export no platform id.
"""

import sqlite3

from test_experiment_browser import (
    CHROMIUM,
    DRIVER,
    FLAGS,
    _browser_installed,  # noqa: F401 (the fixture: skips, or fails under CI)
    click_pixel,
    trial_ready,
    wait,
)

from ferjax.people.clicklogs import load_logs
from ferjax.people.experiment.demo import make_stimuli
from ferjax.people.experiment.export import export
from ferjax.people.experiment.loadcheck import free_port, start_server, stop
from ferjax.people.experiment.psychds import check, export_psychds

PID, STUDY_ID, SESSION_ID = "5f1a2b3c4d5e6f7a8b9c0d1e", "60aa11bb22cc", "sess42"
# Chromium may reach 127.0.0.1 only: the study must run offline.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
PLAN = [[(60, 70), (100, 200)], [(255, 0)], [], [(30, 31), (31, 30), (128, 128)]]  # clicks, cycled over trials


def chromium(tmp_path, accept_insecure=False):
    """A headless Chromium that reaches 127.0.0.1 only."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS + OFFLINE + [f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(f)
    opts.accept_insecure_certs = accept_insecure
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    return driver


def text(d, element="text"):
    return d.find_element("id", element).text


def test_prolific_participant_from_consent_to_completion(tmp_path):
    stim = tmp_path / "stim"
    tpath = make_stimuli(stim, per_class=1)
    db = tmp_path / "exp.sqlite"
    (tmp_path / "consent.md").write_text("# Consent\n\nYou are invited to **take part** in a study.\n")
    (tmp_path / "debrief.html").write_text("<h2>Thank you</h2><p id='debriefed'>The study compared people and "
                                           "networks.</p>")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    link = f"{base}/s/faces?PROLIFIC_PID={PID}&STUDY_ID={STUDY_ID}&SESSION_ID={SESSION_ID}"
    proc = start_server(stim, tpath, db, port, "--study", "faces", "--consent", tmp_path / "consent.md",
                        "--debrief", tmp_path / "debrief.html", "--completion-code", "GOOD1234",
                        "--failed-attention-code", "FAIL5678", "--completion-url", f"{base}/completed?cc={{code}}",
                        "--practice", 1, "--sessions", 2, "--catch-every", 4, "--seed", 5, "--min-viewport", "400x500")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    d = chromium(tmp_path)
    want, plan, every = [], iter(PLAN * 10), 0
    try:
        # someone declines: no row, only the count
        d.get(f"{base}/s/faces?PROLIFIC_PID=ffffffffffffffffffffffff&STUDY_ID={STUDY_ID}&SESSION_ID=other")
        wait(d, "return document.getElementById('consent') !== null")
        assert "take part" in text(d, "consent")
        d.find_element("id", "decline").click()
        wait(d, "return document.body.dataset.declined === '1'")
        assert "Nothing about you has been stored" in text(d, "declined")
        assert con.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 0
        assert con.execute("SELECT n FROM counters WHERE name = 'declined'").fetchone()[0] == 1
        assert "ffffffffffffffffffffffff" not in "\n".join(sqlite3.connect(db).iterdump())
        # the participant agrees, in a window too small for the task
        d.set_window_size(380, 420)
        d.get(link)
        wait(d, "return document.getElementById('agree') !== null")
        d.find_element("id", "agree").click()
        wait(d, "return document.body.dataset.check === 'small'")
        assert "too small" in text(d) and "400 x 500" in text(d)
        d.set_window_size(800, 800)
        wait(d, "return document.body.dataset.screen === 'message'", 60)  # checked, preloaded: the instructions
        assert "blur" in text(d)
        token = d.current_url.rsplit("/", 1)[1]
        pid, = con.execute("SELECT id FROM participants WHERE token = ? AND platform = 'prolific' AND "
                           "platform_pid = ? AND study_id = ? AND session_id = ?", (token, PID, STUDY_ID,
                                                                                     SESSION_ID)).fetchone()
        env = con.execute("SELECT user_agent, screen_w, viewport_w, viewport_h FROM environments").fetchall()
        assert len(env) == 1 and "Chrome" in env[0][0] and env[0][1] > 0 and env[0][2:] >= (400, 500)
        loaded = d.execute_script("return performance.getEntriesByType('resource').filter("
                                  "(e) => e.name.includes('/trial/')).length")
        assert loaded == 2 * 11  # every image of the 11 trials before the first trial
        sched = con.execute("SELECT idx, block, kind, filename, true_label, foil_label FROM trials "
                            "WHERE participant = ? ORDER BY idx", (pid,)).fetchall()
        assert [r[2] for r in sched].count("catch") == 2
        d.find_element("id", "go").click()
        for idx, block, kind, name, true, foil in sched:
            if idx == 6:  # the same id reopens the study link mid-study: back at this trial
                d.get(link)
            trial_ready(d, idx)
            assert d.execute_script("return document.body.dataset.kind") == kind
            if idx == 3:  # one click acknowledged, then a reload: the trial restarts, its click flagged
                before = int(d.execute_script("return document.body.dataset.acked"))
                click_pixel(d, 5, 5)
                wait(d, f"return Number(document.body.dataset.acked) > {before}")
                d.refresh()
                trial_ready(d, idx)
            clicks = next(plan)
            every += len(clicks)
            for x, y in clicks:
                click_pixel(d, x, y)
            wait(d, "return document.body.dataset.pending === '0'")
            buttons = {int(b.get_attribute("data-label")): b for b in d.find_elements("css selector", ".choices button")}
            assert set(buttons) == {true, foil}
            if kind == "catch":  # the attention check names its label; the participant obeys
                assert text(d, "progress") == f"Attention check: whatever the face shows, press \u201c{buttons[true].text}\u201d."
                label = true
            else:
                label = true if idx % 2 else foil
            buttons[label].click()
            if block > 0 and kind == "stimulus":
                want.append((name, true, foil, label, label == true, len(clicks), clicks))
            if idx in (0, 5):  # after the practice and after session 1
                wait(d, "return document.body.dataset.screen === 'message'")
                d.find_element("id", "go").click()
        wait(d, "return document.body.dataset.done === '1'")  # the debriefing, then the completion redirect
        assert d.find_element("id", "debriefed").text.startswith("The study compared")
        d.find_element("id", "go").click()
        wait(d, f"return location.href === '{base}/completed?cc=GOOD1234'")
        # the same id after completion: a polite page, and nothing runs again
        d.get(link)
        wait(d, "return document.getElementById('already') !== null")
        assert "already completed" in text(d, "already")
        assert d.find_element("id", "complete").get_attribute("href") == f"{base}/completed?cc=GOOD1234"
        assert con.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 1
    finally:
        d.quit()
        stop(proc)
    assert con.execute("SELECT idx, x, y FROM clicks WHERE interrupted = 1").fetchall() == [(3, 5.0, 5.0)]
    assert con.execute("SELECT completed_at IS NOT NULL FROM participants").fetchone()[0] == 1
    export(db, tmp_path / "out")
    trials, clicks = load_logs(tmp_path / "out")
    assert [(r.filename, r.true, r.foil, r.chosen, r.correct, r.count) for r in trials.itertuples()] == \
        [w[:6] for w in want]
    assert clicks[["filename", "x", "y", "order"]].values.tolist() == [
        [w[0], x, y, k + 1] for w in want for k, (x, y) in enumerate(w[6])]
    export_psychds(db, tmp_path / "psychds", study="faces")
    assert check(tmp_path / "psychds") == []
    files = {p.name: p.read_text() for p in (tmp_path / "psychds").rglob("*") if p.is_file()}
    assert not any(v in t for t in files.values() for v in (PID, STUDY_ID, SESSION_ID))
    rows = files["study-faces_subject-P001_task-reveal_description-clicks_data.csv"].splitlines()
    assert len(rows) - 1 == every + 1  # all of them: practice, catch trials and the reloaded attempt's click
