"""The public study link (consent, platform ids, resume, completion codes), attention checks and what follows
from them: the admin counts, the exports and the `human` stage's exclusions. Real-browser runs of the same
path are in test_experiment_online.py."""

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from ferjax.cli import main
from ferjax.people.experiment.app import create_app
from ferjax.people.experiment.db import Store
from ferjax.people.experiment.demo import make_stimuli
from ferjax.people.experiment.design import Design, read_trials, schedule
from ferjax.people.experiment.psychds import check, export_psychds
from ferjax.people.experiment.texts import markdown
from ferjax.people.experiment.web import Settings

ADMIN = "admin-secret-token"
IDS = {"PROLIFIC_PID": "5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY_ID": "60aa11", "SESSION_ID": "sess9"}
Q = "&".join(f"{k}={v}" for k, v in IDS.items())
_n = iter(range(10**9))


def eid():
    return f"event-{next(_n):08d}"


@pytest.fixture
def env(tmp_path):
    trials = make_stimuli(tmp_path / "stim", per_class=1)
    design = Design(tmp_path / "stim", read_trials(tmp_path / "stim", trials))
    store = Store(tmp_path / "exp.sqlite")
    settings = Settings(schedule={"practice": 1, "sessions": 2, "seed": 5, "catch_every": 4}, study="faces",
                        consent="<p>Consent text</p>", debrief="<p>Debriefing</p>", completion_code="GOOD1234",
                        failed_code="FAIL5678", catch_failures=2)
    client = TestClient(create_app(store, design, ADMIN, settings), follow_redirects=False)
    yield client, store, tmp_path
    store.close()


def consent(client, decision="agree", **ids):
    return client.post("/api/s/faces/consent", json={"decision": decision, **ids})


def run(client, store, tok, catch_right=True, salt=0):
    """Answer every trial (the foil on every third stimulus trial, shifted by ``salt``, else the true label);
    catch trials as told, or against it."""
    while (s := client.get(f"/api/p/{tok}/state").json())["phase"] != "done":
        ack = client.post(f"/api/p/{tok}/start", json={"event": eid(), "trial": s["trial"]["idx"]}).json()
        clicks = 1 + (ack["trial"] + salt) % 3
        for k in range(clicks):
            assert client.post(f"/api/p/{tok}/click", json={"event": eid(), "trial": ack["trial"], "attempt":
                               ack["attempt"], "x": 100 + 9 * k, "y": 120, "t": 3.0 + k}).status_code == 200
        true, foil = store.q("SELECT t.true_label, t.foil_label FROM trials t JOIN participants p ON p.id = t.participant"
                             " WHERE p.token = ? AND t.idx = ?", (tok, ack["trial"]))[0]
        catch = s["trial"]["kind"] == "catch"
        label = foil if (catch and not catch_right) or (not catch and (ack["trial"] + salt) % 3 == 0) else true
        assert client.post(f"/api/p/{tok}/choice", json={"event": eid(), "trial": ack["trial"], "attempt": ack["attempt"],
                                                         "label": label, "t": 3.5 + clicks, "shown": 2.0}).status_code == 200
    return s


def count(store, sql="SELECT COUNT(*) FROM participants"):
    return store.q(sql)[0][0]


def test_catch_trials_in_the_schedule(env):
    _, store, tmp = env
    trials = read_trials(tmp / "stim", tmp / "stim/trials.csv")
    plain = schedule(trials, 3, 2, 2)
    rows = schedule(trials, 3, 2, 2, catch_every=3)
    stim = [r for r in rows if r[-1] == "stimulus"]
    assert [r[1:] for r in stim] == [r[1:] for r in plain]  # the stimulus order does not move
    catch = [r for r in rows if r[-1] == "catch"]
    assert len(catch) == 8 // 3 and all(r[1] > 0 for r in catch)  # never in practice
    for _, _, name, press, face, _, _ in catch:
        assert int(name.split("/")[0]) == face != press  # buttons: the instructed label and the face's own


def test_prolific_link_consent_resume_and_completion(env):
    client, store, _ = env
    r = client.get(f"/s/faces?{Q}")
    assert r.status_code == 200 and "Consent text" in r.text and 'id="agree"' in r.text
    assert count(store) == 0  # nothing is stored before the participant agrees
    r = consent(client, **IDS)
    tok = r.json()["token"]
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # plain HTTP
    assert consent(client, **IDS).json()["token"] == tok  # agreeing twice (a reload) makes no second participant
    r = client.get(f"/s/faces?{Q}")  # the same id returning mid-study resumes on its own page
    assert r.status_code == 303 and r.headers["location"] == f"/p/{tok}"
    row = store.q("SELECT platform, platform_pid, study_id, session_id FROM participants")[0]
    assert tuple(row) == ("prolific", IDS["PROLIFIC_PID"], IDS["STUDY_ID"], IDS["SESSION_ID"])
    client.post(f"/api/p/{tok}/environment", json={"user_agent": "test", "screen_w": 1920, "screen_h": 1080,
                                                  "viewport_w": 800, "viewport_h": 600, "dpr": 1.5, "touch": False})
    s = run(client, store, tok)
    assert s["completion_url"] == "https://app.prolific.com/submissions/complete?cc=GOOD1234"
    assert s["debrief"] == "<p>Debriefing</p>"
    r = client.get(f"/s/faces?{Q}")  # after completion: "already done", and never run again
    assert r.status_code == 200 and "already completed" in r.text and "cc=GOOD1234" in r.text
    assert count(store) == 1
    r = client.get("/s/faces")  # no id in the link: the consent cookie finds the participant
    assert r.status_code == 200 and "already completed" in r.text


def test_decline_stores_only_a_count(env):
    client, store, tmp = env
    for _ in range(3):
        assert consent(client, "decline", **IDS).json() == {"declined": True}
    assert count(store) == 0
    dump = "\n".join(sqlite3.connect(tmp / "exp.sqlite").iterdump())
    assert IDS["PROLIFIC_PID"] not in dump and IDS["SESSION_ID"] not in dump
    counts = client.get("/api/admin/participants", headers={"Authorization": f"Bearer {ADMIN}"}).json()["counts"]
    assert counts == {"started": 0, "completed": 0, "excluded": 0, "declined": 3, "in_progress": 0}


def test_concurrent_consents_make_one_participant(env):
    client, store, _ = env
    with ThreadPoolExecutor(8) as ex:
        tokens = set(ex.map(lambda _: consent(client, pid="same-person").json()["token"], range(16)))
    assert len(tokens) == 1 and count(store) == 1


def test_failed_attention_checks_get_their_code_and_are_excluded_by_the_human_stage(env):
    client, store, tmp = env
    toks = [consent(client, pid=f"person{k}").json()["token"] for k in range(5)]
    for k, tok in enumerate(toks):
        s = run(client, store, tok, catch_right=k != 1, salt=k)
        assert s["completion_url"].endswith("cc=" + ("FAIL5678" if k == 1 else "GOOD1234"))
    assert store.q("SELECT COUNT(*) FROM trials WHERE kind = 'catch' AND chosen IS NOT NULL")[0][0] == 10
    h = {"Authorization": f"Bearer {ADMIN}"}
    assert client.get("/api/admin/participants", headers=h).json()["counts"] == {
        "started": 5, "completed": 5, "excluded": 1, "declined": 0, "in_progress": 0}
    out = tmp / "logs"
    r = CliRunner().invoke(main, ["experiment", "export", "--db", str(tmp / "exp.sqlite"), "--out", str(out),
                                  "--psychds", str(tmp / "psychds")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name.split("_")[1] for p in out.iterdir() if "_" in p.name) == ["P001", "P002", "P003", "P004", "P005"]
    assert sum(1 for line in (next(out.glob("*_P002")) / "choices.csv").open()) == 9
    metrics = tmp / "human.json"
    r = CliRunner().invoke(main, ["human", "--logs", str(out), "--radius", "15", "--splits", "2",
                                  "--min-catch-accuracy", "0.75", "--out", str(tmp / "human"),
                                  "--metrics", str(metrics)])
    assert r.exit_code == 0, r.output
    m = json.loads(metrics.read_text())
    ex = m["exclusions"]
    assert ex["participants"] == {"before": 5, "excluded": 1, "reasons": {"catch_accuracy": 1},
                                  "excluded_ids": ["P002"]}
    assert ex["trials"]["reasons"] == {"participant_excluded": 8} and m["participants"] == 4
    assert (tmp / "human/exclusions.csv").read_text().splitlines() == ["participant,filename,reason",
                                                                       "P002,,catch_accuracy"]
    assert count(store, "SELECT COUNT(*) FROM trials t JOIN participants p ON p.id = t.participant "
                        "WHERE p.name = 'P002' AND t.chosen IS NOT NULL") == 11  # still in the database
    # a rule whose file is missing is an error, not a silent keep-everyone
    (out / "responses.csv").unlink()
    r = CliRunner().invoke(main, ["human", "--logs", str(out), "--min-rt", "0.5", "--out", str(tmp / "h2")])
    assert r.exit_code == 2 and "responses.csv" in r.output and "min_rt" in r.output and not (tmp / "h2").exists()


def test_psychds_export_has_every_trial_and_no_platform_ids(env):
    client, store, tmp = env
    tok = consent(client, **IDS).json()["token"]
    run(client, store, tok)
    n = export_psychds(tmp / "exp.sqlite", tmp / "ds", study="faces")
    assert n == 1 and check(tmp / "ds") == []
    text = "".join(p.read_text() for p in (tmp / "ds").rglob("*") if p.is_file())
    assert all(v not in text for v in IDS.values()) and "platform_pid" not in text
    trials = (tmp / "ds/data/study-faces_subject-P001_task-reveal_description-trials_data.csv").read_text()
    kinds = [line.split(",")[3] for line in trials.splitlines()[1:]]
    assert kinds.count("practice") == 1 and kinds.count("catch") == 2 and kinds.count("stimulus") == 8
    export_psychds(tmp / "exp.sqlite", tmp / "ds2", study="faces", platform_ids=True)
    assert IDS["PROLIFIC_PID"] in (tmp / "ds2/data/study-faces_description-participants_data.csv").read_text()
    assert check(tmp / "ds2") == []
    (tmp / "ds2/data/bad_name.csv").write_text("zzz\n1\n")
    assert any("bad_name.csv" in p for p in check(tmp / "ds2"))


def test_https_settings_secure_cookie_and_admin(env):
    client, store, tmp = env
    app = client.app
    app.state.settings.https = True
    r = consent(client, pid="abc")
    assert "secure" in r.headers["set-cookie"].lower()
    assert client.get("/api/admin/participants", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 403
    tls = TestClient(app, base_url="https://testserver")
    assert tls.get("/api/admin/participants", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def _refused(res, status, fragment):
    assert res.status_code == status, res.text
    assert fragment in res.text


def test_hostile_requests_to_the_new_routes_change_nothing(env):
    client, store, tmp = env
    tok = consent(client, pid="someone").json()["token"]
    before = sqlite3.connect(tmp / "exp.sqlite").iterdump()
    before = list(before)
    _refused(client.get("/s/other?pid=x"), 404, "no such study")
    _refused(client.get("/s/faces?PROLIFIC_PID=%3Cscript%3E"), 400, "malformed PROLIFIC_PID")
    _refused(client.get("/s/faces?pid=" + "a" * 65), 400, "malformed pid")
    client.cookies.clear()
    _refused(client.get("/s/faces"), 400, "does not say who you are")
    assert "<script>" not in client.get("/s/faces?PROLIFIC_PID=%3Cscript%3E").text
    c = "/api/s/faces/consent"
    for body, status, fragment in [
            (b"{not json", 400, "not valid JSON"), (b'{"decision": "maybe"}', 422, "one of agree, decline"),
            (b'{"decision": "agree"}', 422, "needs the platform"), (b'{"decision": "agree", "pid": "a b"}', 422, "'pid'"),
            (b'{"decision": "agree", "pid": "x", "name": "Eve"}', 422, "unknown field"),
            (b'{"decision": "agree", "pid": "' + b"x" * 5000 + b'"}', 413, "larger")]:
        _refused(client.post(c, content=body), status, fragment)
    _refused(client.post("/api/s/other/consent", json={"decision": "decline"}), 404, "no such study")
    e = f"/api/p/{tok}/environment"
    good = {"user_agent": "x", "screen_w": 1, "screen_h": 1, "viewport_w": 1, "viewport_h": 1, "dpr": 1, "touch": True}
    for change, fragment in [({"screen_w": -1}, "0..100000"), ({"dpr": "1"}, "finite number"),
                             ({"touch": 1}, "true or false"), ({"user_agent": "x" * 600}, "512"),
                             ({"user_agent": "a\nb"}, "printable"), ({"extra": 1}, "unknown")]:
        _refused(client.post(e, json={**good, **change}), 422, fragment)
    _refused(client.post("/api/p/not-a-token/environment", json=good), 404, "unknown participant")
    _refused(client.get("/api/p/not-a-token/images"), 404, "unknown participant")
    _refused(client.get(f"/api/p/{tok}/trial/99/blur.png"), 404, "no trial 99")
    _refused(client.get(f"/api/p/{tok}/trial/0/mask.png"), 404, "no such image")
    _refused(client.get("/jspsych/src/plugin-reveal-click.js"), 404, "")  # not served without --jspsych
    _refused(client.get("/api/admin/participants"), 401, "admin token")
    assert list(sqlite3.connect(tmp / "exp.sqlite").iterdump()) == before
    assert consent(client, "decline").json() == {"declined": True}  # the one change: a count


def test_markdown_pages_escape_html():
    html = markdown("# Title\n\nText with **bold** and [a link](https://example.org).\n\n- one\n- two\n\n<b>x</b>")
    assert html == ('<h2>Title</h2>\n<p>Text with <strong>bold</strong> and <a href="https://example.org">a link</a>.'
                    '</p>\n<ul><li>one</li><li>two</li></ul>\n<p>&lt;b&gt;x&lt;/b&gt;</p>')
    assert "javascript" not in markdown("[x](javascript:alert(1))").split('href="')[-1][:12]


def test_a_database_of_version_0_1_is_upgraded_on_open(tmp_path):
    trials = make_stimuli(tmp_path / "stim", per_class=1)
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as c:  # the 0.1 schema's two changed tables, and one participant mid-study
        c.executescript("""CREATE TABLE participants(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
          token TEXT UNIQUE NOT NULL, seed INTEGER NOT NULL, created TEXT NOT NULL);
          CREATE TABLE trials(participant INTEGER NOT NULL REFERENCES participants(id), idx INTEGER NOT NULL,
          block INTEGER NOT NULL, filename TEXT NOT NULL, true_label INTEGER NOT NULL, foil_label INTEGER NOT NULL,
          true_left INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, chosen INTEGER, t_shown REAL,
          t_choice REAL, answered_at REAL, PRIMARY KEY(participant, idx));
          INSERT INTO participants VALUES (1, 'P001', 'oldtoken', 7, '260101');
          INSERT INTO trials VALUES (1, 0, 1, '0/0_0.png', 0, 1, 1, 1, 0, 1.0, 2.0, 3.0),
                                    (1, 1, 1, '1/1_0.png', 1, 2, 0, 0, NULL, NULL, NULL, NULL);""")
    n = CliRunner().invoke(main, ["experiment", "export", "--db", str(db), "--out", str(tmp_path / "out")])
    assert n.exit_code == 0 and "exported 1 trial(s) of 1 participant(s)" in n.output, n.output
    store = Store(db)
    assert store.state(1)["trial"]["idx"] == 1 and store.state(1)["trial"]["kind"] == "stimulus"
    assert store.add_participants(1, read_trials(tmp_path / "stim", trials), practice=0, sessions=1, catch_every=4)
    assert store.q("SELECT platform FROM participants ORDER BY id")[0][0] == "link"
    store.close()


def test_jspsych_route_serves_only_the_npm_builds_and_the_plugin(env):
    client, store, tmp = env
    js = tmp / "js"
    for path, body in [("package.json", "{}"), ("secret.js", "no"), ("src/plugin-reveal-click.js", "plugin"),
                       ("node_modules/jspsych/dist/index.browser.min.js", "jspsych"),
                       ("node_modules/jspsych/package.json", "{}"), ("node_modules/other/dist/x.js", "no"),
                       ("node_modules/@jspsych/plugin-preload/dist/index.browser.min.js", "preload")]:
        (js / path).parent.mkdir(parents=True, exist_ok=True)
        (js / path).write_text(body)
    from ferjax.people.experiment import vendor
    settings = client.app.state.settings
    settings.jspsych = vendor.check(js)
    client = TestClient(create_app(store, Design(tmp / "stim", read_trials(tmp / "stim", tmp / "stim/trials.csv")),
                                   ADMIN, settings))
    for ok in ["src/plugin-reveal-click.js", "node_modules/jspsych/dist/index.browser.min.js",
               "node_modules/@jspsych/plugin-preload/dist/index.browser.min.js"]:
        r = client.get(f"/jspsych/{ok}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    for bad in ["secret.js", "package.json", "node_modules/jspsych/package.json", "node_modules/other/dist/x.js",
                "src/../secret.js", "src/%2e%2e/secret.js", "node_modules/jspsych/dist/..%2f..%2fpackage.json",
                "example/..", "src/x/../../secret.js"]:
        assert client.get(f"/jspsych/{bad}").status_code == 404, bad
    (js / "node_modules/jspsych/dist/index.browser.min.js").unlink()
    (js / "node_modules/jspsych/dist").rmdir()
    with pytest.raises(Exception, match="npm ci --prefix"):
        vendor.check(js)
