"""The experiment server's API: a full run, every kind of refused request, idempotency, export."""

import sqlite3

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from ferjax.cli.experiment import experiment
from ferjax.people.clicklogs import load_logs
from ferjax.people.experiment.app import create_app
from ferjax.people.experiment.db import Store
from ferjax.people.experiment.demo import make_stimuli
from ferjax.people.experiment.design import Design, read_trials
from ferjax.people.experiment.export import export, frames
from ferjax.people.experiment.texts import read_texts

ADMIN = "admin-secret-token"
_n = iter(range(10**9))


def eid():
    return f"event-{next(_n):08d}"


@pytest.fixture
def env(tmp_path):
    trials = make_stimuli(tmp_path / "stim", per_class=1)
    design = Design(tmp_path / "stim", read_trials(tmp_path / "stim", trials))
    store = Store(tmp_path / "exp.sqlite")
    made = store.add_participants(2, design.trials, practice=1, sessions=2, seed=7)
    client = TestClient(create_app(store, design, ADMIN))
    yield client, store, [tok for _, tok in made], tmp_path
    store.close()


def begin(client, tok):
    s = client.get(f"/api/p/{tok}/state").json()
    ack = client.post(f"/api/p/{tok}/start", json={"event": eid(), "trial": s["trial"]["idx"]}).json()
    return s, ack


def click(client, tok, ack, x, y, t, event=None):
    return client.post(f"/api/p/{tok}/click", json={"event": event or eid(), "trial": ack["trial"],
                                                     "attempt": ack["attempt"], "x": x, "y": y, "t": t})


def rows(store, sql):
    return [tuple(r) for r in store.q(sql)]


def truth(store, tok, idx):
    return store.q("SELECT t.true_label, t.foil_label FROM trials t JOIN participants p ON p.id = t.participant "
                   "WHERE p.token = ? AND t.idx = ?", (tok, idx))[0]


def choose(client, tok, ack, label, t, event=None):
    return client.post(f"/api/p/{tok}/choice", json={"event": event or eid(), "trial": ack["trial"],
                                                      "attempt": ack["attempt"], "label": label, "t": t})


def run_all(client, store, tok):
    """Answer every trial: two clicks at (10+i, 20+i), (30, 40), the true label on even trials."""
    i = 0
    while (s := client.get(f"/api/p/{tok}/state").json())["phase"] != "done":
        _, ack = begin(client, tok)
        assert click(client, tok, ack, 10 + i, 20 + i, 5.0).status_code == 200
        assert click(client, tok, ack, 30, 40, 5.5).status_code == 200
        true, foil = truth(store, tok, ack["trial"])
        assert choose(client, tok, ack, true if i % 2 == 0 else foil, 6.25).status_code == 200
        i += 1
    return s


def test_full_run_and_export(env):
    client, store, (a, b), tmp = env
    s = client.get(f"/api/p/{a}/state").json()
    assert s["phase"] == "instructions" and s["total"] == 8 and s["blocks"] == {"0": 1, "1": 4, "2": 4}
    assert client.get(f"/p/{a}").status_code == 200
    assert run_all(client, store, a)["done"] == 8
    n_people, n_trials = export(tmp / "exp.sqlite", tmp / "out")
    assert (n_people, n_trials) == (1, 8)  # practice not exported; b has nothing yet
    trials, clicks = load_logs(tmp / "out")
    tidy_t, tidy_c = load_logs(tmp / "out/tidy")
    assert trials.equals(tidy_t) and clicks.equals(tidy_c)
    assert list(trials["participant"].unique()) == ["P001"] and (trials["count"] == 2).all()
    assert trials["time"].tolist() == [1.25] * 8 and trials["correct"].tolist() == [False, True] * 4
    assert clicks["time"].tolist() == [0.0, 0.5] * 8 and clicks["order"].tolist() == [1, 2] * 8
    assert clicks["x"].tolist()[2:4] == [12, 30]  # trial i=2 overall is the 2nd main trial (practice first)


def test_reload_restarts_trial_and_flags_clicks(env):
    client, store, (a, _), tmp = env
    _, ack = begin(client, a)  # practice
    choose(client, a, ack, truth(store, a, 0)[0], 1.0)
    _, ack1 = begin(client, a)
    assert click(client, a, ack1, 5, 5, 1.0).status_code == 200
    s, ack2 = begin(client, a)  # the page was reloaded: same trial, new attempt
    assert (s["phase"], ack2["trial"], ack2["attempt"]) == ("trial", ack1["trial"], ack1["attempt"] + 1)
    assert click(client, a, ack1, 6, 6, 1.5).status_code == 409  # the old attempt is over
    assert click(client, a, ack2, 7, 8, 0.5).status_code == 200
    assert choose(client, a, ack2, truth(store, a, 1)[0], 2.0).status_code == 200
    assert rows(store, "SELECT x, interrupted FROM clicks ORDER BY id") == [(5.0, 1), (7.0, 0)]
    trials, clicks, _ = frames(tmp / "exp.sqlite")
    assert clicks[["x", "y", "time"]].values.tolist() == [[7, 8, 0]] and trials["time"].tolist() == [1.5]


def _refused(res, status, fragment):
    assert res.status_code == status, res.text
    assert fragment in res.json()["error"]


def test_rejected_requests_change_nothing(env):
    client, store, (a, b), _ = env
    _, ack = begin(client, a)
    before = store.q("SELECT COUNT(*) FROM clicks")[0][0], store.q("SELECT COUNT(*) FROM events")[0][0]
    _refused(client.get("/api/p/not-a-token/state"), 404, "unknown participant")
    _refused(click(client, "x" * 40, ack, 1, 1, 1), 404, "unknown participant")
    _refused(click(client, a, ack, 256, 3, 1.0), 422, "outside the 256x256 frame")
    _refused(click(client, a, ack, -0.5, 3, 1.0), 422, "outside")
    _refused(click(client, a, {**ack, "trial": 3}, 1, 1, 1.0), 409, "not your current trial")
    # b has not started: a's trial and attempt mean nothing for b; b sees only images of b's own trials
    _refused(click(client, b, ack, 1, 1, 1.0), 409, "attempt")
    _refused(client.get(f"/api/p/{b}/trial/99/face.png"), 404, "you have no trial 99")
    true, foil = truth(store, a, 0)
    wrong = next(k for k in range(8) if k not in (true, foil))
    _refused(choose(client, a, ack, wrong, 2.0), 422, "not one of this trial's two labels")
    for body, status, fragment in [
        (b"{not json", 400, "not valid JSON"), (b"[1, 2]", 400, "JSON object"),
        (b'{"event": "abcdefgh", "trial": 0, "attempt": 1, "x": NaN, "y": 1, "t": 1}', 400, "NaN"),
        (b'{"event": "abc", "trial": 0, "attempt": 1, "x": 1, "y": 1, "t": 1}', 422, "event"),
        (b'{"event": "abcdefgh", "trial": "0", "attempt": 1, "x": 1, "y": 1, "t": 1}', 422, "'trial'"),
        (b'{"event": "abcdefgh", "trial": 0, "attempt": 1, "x": true, "y": 1, "t": 1}', 422, "'x'"),
        (b'{"event": "abcdefgh", "trial": 0, "attempt": 1, "x": 1, "y": 1}', 422, "'t' is required"),
        (b'{"event": "abcdefgh", "trial": 0, "attempt": 1, "x": 1, "y": 1, "t": 1, "z": 2}', 422, "unknown"),
        (b'{"event": "' + b"a" * 5000 + b'"}', 413, "larger")]:
        _refused(client.post(f"/api/p/{a}/click", content=body), status, fragment)
    assert (store.q("SELECT COUNT(*) FROM clicks")[0][0], store.q("SELECT COUNT(*) FROM events")[0][0]) == before
    assert store.q("SELECT COUNT(*) FROM trials WHERE chosen IS NOT NULL")[0][0] == 0
    _refused(client.get("/api/admin/participants"), 401, "admin token")
    _refused(client.get("/api/admin/participants", headers={"Authorization": f"Bearer {a}"}), 401, "admin token")
    assert client.get("/api/p/../../etc/passwd").status_code == 404
    assert client.get("/static/../db.py").status_code == 404


def test_duplicate_events_are_idempotent(env):
    client, store, (a, _), _ = env
    _, ack = begin(client, a)
    first = click(client, a, ack, 10, 10, 1.0, event="dup-click-1")
    again = click(client, a, ack, 99, 99, 3.0, event="dup-click-1")  # same id, other payload: nothing changes
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert rows(store, "SELECT x, y FROM clicks") == [(10.0, 10.0)]
    true, _ = truth(store, a, 0)
    c1 = choose(client, a, ack, true, 2.0, event="dup-choice-1")
    c2 = choose(client, a, ack, true, 2.0, event="dup-choice-1")
    assert c1.json() == c2.json() and c1.json()["count"] == 1
    again = click(client, a, ack, 10, 10, 1.0, event="dup-click-1")  # a late replay after the trial ended
    assert again.json() == first.json()
    assert store.q("SELECT COUNT(*) FROM clicks")[0][0] == 1
    # a time earlier than the previous click is refused (clocks are monotonic)
    _, ack = begin(client, a)
    click(client, a, ack, 1, 1, 5.0)
    _refused(click(client, a, ack, 1, 1, 4.0), 422, "earlier")


def test_admin_view_lists_adds_and_exports(env):
    client, store, (a, b), _ = env
    client.app.state.settings.schedule = {"practice": 1, "sessions": 2, "seed": 1}
    h = {"Authorization": f"Bearer {ADMIN}"}
    assert client.get("/admin").status_code == 200
    rows = client.get("/api/admin/participants", headers=h).json()["participants"]
    assert [r["name"] for r in rows] == ["P001", "P002"] and rows[0]["total"] == 8
    rows = client.post("/api/admin/participants", headers=h, json={"n": 2}).json()["participants"]
    assert len(rows) == 4 and len({r["token"] for r in rows}) == 4
    run_all(client, store, b)
    res = client.get("/api/admin/export.zip", headers=h)
    assert res.status_code == 200 and res.content[:2] == b"PK"


def test_cli_add_export_and_bad_input(tmp_path):
    trials = make_stimuli(tmp_path / "stim")
    db = tmp_path / "e.sqlite"
    r = CliRunner().invoke(experiment, ["add", "--stimuli", str(tmp_path / "stim"), "--trials", str(trials),
                                        "--db", str(db), "-n", "2", "--practice", "0"])
    assert r.exit_code == 0, r.output
    assert len(r.output.splitlines()) == 2 and "/p/" in r.output
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    r = CliRunner().invoke(experiment, ["export", "--db", str(db), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0 and "exported 0 trial(s)" in r.output
    (tmp_path / "bad.csv").write_text("filename,true,foil\n0/0_0.png,0,0\n")
    r = CliRunner().invoke(experiment, ["add", "--stimuli", str(tmp_path / "stim"), "--trials",
                                        str(tmp_path / "bad.csv"), "--db", str(db)])
    assert r.exit_code == 2 and "row 1" in r.output
    (tmp_path / "t.json").write_text('{"done": "Danke!"}')
    assert read_texts(tmp_path / "t.json")["done"] == "Danke!"
