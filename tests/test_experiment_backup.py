"""`ferjax experiment backup` copies the live database while simulated participants keep clicking.

The copy opens, passes SQLite's integrity check, is one self-contained file, and holds every click
acknowledged before the backup began; the participants' writes go on during the backup. The database is
padded to 30 MB first so that the copy takes long enough for writes to land while it runs.
"""

import sqlite3
import subprocess
import sys
import threading
import time

from ferjax.people.experiment.db import Store
from ferjax.people.experiment.demo import make_stimuli
from ferjax.people.experiment.loadcheck import STUDY, Client, enrol, free_port, start_server, stop

PEOPLE = 12


def clicker(port, k, stop_flag, acked):
    """Trial after trial: start, 8 clicks, a choice; every acknowledged click as (ack time, event id)."""
    c = Client(port)
    enrol(c, f"backup{k:02d}")
    n = 0
    while not stop_flag.is_set():
        _, s = c.call("GET", "/state")
        if s["phase"] == "done":
            return
        _, ack = c.call("POST", "/start", {"event": f"start-{k:02d}-{n:06d}", "trial": s["trial"]["idx"]})
        for j in range(8):
            event = f"click-{k:02d}-{n:06d}-{j}"
            status, r = c.call("POST", "/click", {"event": event, "trial": ack["trial"], "attempt": ack["attempt"],
                                                  "x": j, "y": k, "t": 1 + j})
            assert status == 200, r
            acked.append((time.monotonic(), event))
            time.sleep(0.005)
        c.call("POST", "/choice", {"event": f"choice-{k:02d}-{n:06d}", "trial": ack["trial"], "attempt": ack["attempt"],
                                   "label": ack["buttons"][0], "t": 10})
        n += 1


def test_backup_while_participants_click(tmp_path):
    stim = tmp_path / "stim"
    tpath, db, copy = make_stimuli(stim, per_class=4), tmp_path / "exp.sqlite", tmp_path / "backups/copy.sqlite"
    Store(db).close()
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE padding(b BLOB)")
        c.executemany("INSERT INTO padding VALUES (randomblob(1048576))", [()] * 30)
    (tmp_path / "consent.md").write_text("Backup test.\n")
    port = free_port()
    proc = start_server(stim, tpath, db, port, "--study", STUDY, "--consent", tmp_path / "consent.md",
                        "--practice", 0, "--sessions", 1)
    stop_flag, acked = threading.Event(), []
    threads = [threading.Thread(target=clicker, args=(port, k, stop_flag, acked)) for k in range(PEOPLE)]
    try:
        for th in threads:
            th.start()
        while len(acked) < 200:
            time.sleep(0.01)
        began = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "ferjax", "experiment", "backup", "--db", str(db), "--out", str(copy)],
                           capture_output=True, text=True, timeout=120)
        ended = time.monotonic()
        time.sleep(0.3)
    finally:
        stop_flag.set()
        for th in threads:
            th.join(30)
        stop(proc)
    assert r.returncode == 0, r.stderr
    print(r.stdout.strip(), f"(wall {ended - began:.2f} s)")
    before = {e for t, e in acked if t < began}
    during = [e for t, e in acked if began <= t <= ended]
    con = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    in_copy = {e for (e,) in con.execute("SELECT event FROM clicks")}
    assert before <= in_copy, f"{len(before - in_copy)} acknowledged clicks missing from the backup"
    assert during, "no click was acknowledged while the backup ran"
    assert len(in_copy) < len(acked)  # the server went on writing after the snapshot
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy.sqlite"]  # one file, no -wal, no temp
    print(f"{len(before)} clicks acknowledged before the backup, {len(during)} during it, {len(acked)} in all")
