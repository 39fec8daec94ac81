"""The server process is SIGKILLed mid-session; after a restart every acknowledged click is exported."""

import os
import signal
import threading
import time

from ferjax.people.clicklogs import load_logs
from ferjax.people.experiment.db import Store
from ferjax.people.experiment.demo import make_stimuli
from ferjax.people.experiment.design import read_trials
from ferjax.people.experiment.export import export
from ferjax.people.experiment.loadcheck import Client, free_port, start_server, stop


def clicker(port, token, ack, acked, pending, stop_after):
    """Click as fast as acks come back; remember each acknowledged click and the one in flight at the kill."""
    c = Client(port, token)
    for k in range(stop_after):
        body = {"event": f"click-{k:06d}", "trial": ack["trial"], "attempt": ack["attempt"],
                "x": k % 256, "y": (7 * k) % 256, "t": 1 + 0.01 * k}
        try:
            status, r = c.call("POST", "/click", body)
        except OSError:
            pending.append(body)
            return
        assert status == 200, r
        acked.append(body)


def test_sigkill_loses_no_acknowledged_click(tmp_path):
    stim = tmp_path / "stim"
    tpath, db = make_stimuli(stim), tmp_path / "exp.sqlite"
    store = Store(db)
    (_, token), = store.add_participants(1, read_trials(stim, tpath), practice=0, sessions=1, seed=1)
    store.close()
    port = free_port()
    proc = start_server(stim, tpath, db, port)
    try:
        c = Client(port, token)
        _, ack = c.call("POST", "/start", {"event": "start-0000", "trial": 0})
        for k in range(3):
            c.call("POST", "/click", {"event": f"first-{k:04d}", "trial": 0, "attempt": 1, "x": k, "y": k, "t": k})
        assert c.call("POST", "/choice", {"event": "choice-000", "trial": 0, "attempt": 1,
                                          "label": ack["buttons"][0], "t": 5})[0] == 200
        _, ack = c.call("POST", "/start", {"event": "start-0001", "trial": 1})
        acked, pending = [], []
        th = threading.Thread(target=clicker, args=(port, token, ack, acked, pending, 100000))
        th.start()
        while len(acked) < 30:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        th.join(30)
        proc.wait(10)
        assert len(acked) >= 30 and len(pending) == 1
    finally:
        stop(proc)
    proc = start_server(stim, tpath, db, port)
    try:
        c = Client(port, token)
        _, s = c.call("GET", "/state")  # the participant resumes in the trial they were in
        assert (s["phase"], s["trial"]["idx"], s["trial"]["attempt"]) == ("trial", 1, 1)
        status, _ = c.call("POST", "/click", pending[0])  # the click in flight is retried: stored once
        assert status == 200
        assert c.call("POST", "/click", pending[0])[0] == 200
        assert c.call("POST", "/choice", {"event": "choice-001", "trial": 1, "attempt": 1,
                                          "label": ack["buttons"][1], "t": 1000})[0] == 200
        _, s = c.call("GET", "/state")
        assert s["trial"]["idx"] == 2 and s["done"] == 2
    finally:
        stop(proc)
    export(db, tmp_path / "out")
    trials, clicks = load_logs(tmp_path / "out")
    assert len(trials) == 2
    got = clicks[clicks["filename"] == trials["filename"][1]][["x", "y"]].values.tolist()
    assert got == [[b["x"], b["y"]] for b in acked + pending]
    assert trials["count"].tolist() == [3, len(acked) + 1]
