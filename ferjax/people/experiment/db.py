"""The experiment's SQLite store (WAL, synchronous=FULL): every event is committed before it is acknowledged.

Tables: ``participants`` (name, secret token, schedule seed, creation date),
``trials`` (each participant's stored schedule; ``attempt`` counts how often
the trial was started; ``chosen`` is set once it is answered), ``clicks``
(every click ever received, with its attempt; clicks of an earlier attempt are
flagged ``interrupted`` when the trial is restarted) and ``events`` (the ack
returned for each client event id, so that a replayed id gets the same ack and
changes nothing). Validation failures raise :class:`Reject` (status, message)
and leave the database unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import sqlite3
import threading
import time

from ferjax.people.experiment.design import SIZE, schedule

SCHEMA = """
CREATE TABLE IF NOT EXISTS participants(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
  token TEXT UNIQUE NOT NULL, seed INTEGER NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials(participant INTEGER NOT NULL REFERENCES participants(id), idx INTEGER NOT NULL,
  block INTEGER NOT NULL, filename TEXT NOT NULL, true_label INTEGER NOT NULL, foil_label INTEGER NOT NULL,
  true_left INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, chosen INTEGER, t_shown REAL, t_choice REAL,
  answered_at REAL, PRIMARY KEY(participant, idx));
CREATE TABLE IF NOT EXISTS clicks(id INTEGER PRIMARY KEY, participant INTEGER NOT NULL, idx INTEGER NOT NULL,
  attempt INTEGER NOT NULL, event TEXT NOT NULL, x REAL NOT NULL, y REAL NOT NULL, t_client REAL NOT NULL,
  received_at REAL NOT NULL, interrupted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS clicks_trial ON clicks(participant, idx, attempt);
CREATE TABLE IF NOT EXISTS events(participant INTEGER NOT NULL, event TEXT NOT NULL, kind TEXT NOT NULL,
  ack TEXT NOT NULL, PRIMARY KEY(participant, event));
"""


class Reject(Exception):
    """A request the server refuses: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Store:
    """One connection, serialised by a lock; each write is one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, path):
        self.path = str(path)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()

    def close(self):
        self.conn.close()

    @contextlib.contextmanager
    def tx(self):
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def q(self, sql, args=()):
        with self.lock:
            return self.conn.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ participants
    def add_participants(self, n, trials, *, practice, sessions, seed=None) -> list[tuple[str, str]]:
        """Create ``n`` participants with random tokens and stored schedules -> [(name, token)]."""
        made = []
        with self.tx() as c:
            start = c.execute("SELECT COALESCE(MAX(id), 0) FROM participants").fetchone()[0]
            for k in range(start + 1, start + 1 + n):
                name, token = f"P{k:03d}", secrets.token_urlsafe(24)
                s = secrets.randbits(63) if seed is None else int(seed) + k
                c.execute("INSERT INTO participants VALUES (?,?,?,?,?)",
                          (k, name, token, s, dt.date.today().strftime("%y%m%d")))
                c.executemany("INSERT INTO trials(participant, idx, block, filename, true_label, foil_label, true_left) "
                              "VALUES (?,?,?,?,?,?,?)", [(k, *row) for row in schedule(trials, s, practice, sessions)])
                made.append((name, token))
        return made

    def participant(self, token: str):
        rows = self.q("SELECT id, name FROM participants WHERE token = ?", (token,))
        return rows[0] if rows else None

    def progress(self) -> list[dict]:
        rows = self.q("""SELECT p.name, p.token, p.created, SUM(t.block = 0) AS practice,
                  SUM(t.block = 0 AND t.chosen IS NOT NULL) AS practice_done, SUM(t.block > 0) AS total,
                  SUM(t.block > 0 AND t.chosen IS NOT NULL) AS done, MAX(t.answered_at) AS last
                  FROM participants p JOIN trials t ON t.participant = p.id GROUP BY p.id ORDER BY p.id""")
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------ state
    def _current(self, c, pid):
        return c.execute("SELECT * FROM trials WHERE participant = ? AND chosen IS NULL ORDER BY idx LIMIT 1",
                         (pid,)).fetchone()

    def state(self, pid) -> dict:
        with self.lock:
            cur = self._current(self.conn, pid)
            n = self.conn.execute("SELECT block, COUNT(*), SUM(chosen IS NOT NULL) FROM trials WHERE participant = ? "
                                  "GROUP BY block ORDER BY block", (pid,)).fetchall()
            prev = self.conn.execute("SELECT block FROM trials WHERE participant = ? AND idx = ?",
                                     (pid, cur["idx"] - 1 if cur else -1)).fetchone()
        blocks = {b: (int(total), int(done)) for b, total, done in n}
        out = {"blocks": {str(b): v[0] for b, v in blocks.items()}, "sessions": max(blocks) if blocks else 0,
               "done": sum(v[1] for b, v in blocks.items() if b > 0), "total": sum(v[0] for b, v in blocks.items() if b > 0)}
        if cur is None:
            return {**out, "phase": "done", "trial": None}
        first = sum(v[0] for b, v in blocks.items() if b < cur["block"])
        phase = ("trial" if cur["attempt"] > 0 else "instructions" if prev is None
                 else "break" if prev["block"] != cur["block"] else "trial")
        return {**out, "phase": phase, "trial": {"idx": cur["idx"], "block": cur["block"], "attempt": cur["attempt"],
                                                 "n": cur["idx"] - first + 1, "m": blocks[cur["block"]][0]}}

    def current_file(self, pid, idx: int) -> str:
        with self.lock:
            cur = self._current(self.conn, pid)
        if cur is None or cur["idx"] != idx:
            raise Reject(403, f"trial {idx} is not your current trial")
        return cur["filename"]

    # ------------------------------------------------------------------ events
    def _event(self, c, pid, event, kind, check):
        """Replay -> the stored ack; else ``check(cur)`` (raises Reject or returns the ack) and store the ack."""
        old = c.execute("SELECT ack FROM events WHERE participant = ? AND event = ?", (pid, event)).fetchone()
        if old:
            return json.loads(old["ack"])
        ack = {"ok": True, "event": event, "kind": kind, **check(self._current(c, pid))}
        c.execute("INSERT INTO events VALUES (?,?,?,?)", (pid, event, kind, json.dumps(ack)))
        return ack

    @staticmethod
    def _trial(cur, trial, attempt=None):
        if cur is None:
            raise Reject(409, "the experiment is finished: there is no current trial")
        if trial != cur["idx"]:
            raise Reject(409, f"trial {trial} is not your current trial ({cur['idx']})")
        if attempt is not None and attempt != cur["attempt"]:
            raise Reject(409, f"attempt {attempt} of trial {trial} is over (current attempt {cur['attempt']}); reload")

    def start(self, pid, event, trial) -> dict:
        def check(cur):
            self._trial(cur, trial)
            a = cur["attempt"] + 1
            c.execute("UPDATE trials SET attempt = ? WHERE participant = ? AND idx = ?", (a, pid, trial))
            c.execute("UPDATE clicks SET interrupted = 1 WHERE participant = ? AND idx = ? AND attempt < ?", (pid, trial, a))
            labels = [cur["true_label"], cur["foil_label"]]
            return {"trial": trial, "attempt": a, "block": cur["block"],
                    "buttons": labels if cur["true_left"] else labels[::-1]}
        with self.tx() as c:
            return self._event(c, pid, event, "start", check)

    def _last_t(self, c, pid, trial, attempt):
        return c.execute("SELECT MAX(t_client), COUNT(*) FROM clicks WHERE participant = ? AND idx = ? AND attempt = ?",
                         (pid, trial, attempt)).fetchone()

    def click(self, pid, event, trial, attempt, x, y, t) -> dict:
        def check(cur):
            self._trial(cur, trial, attempt)
            if not (0 <= x < SIZE and 0 <= y < SIZE):
                raise Reject(422, f"click ({x:g}, {y:g}) is outside the {SIZE}x{SIZE} frame")
            last, n = self._last_t(c, pid, trial, attempt)
            if t < 0 or (last is not None and t < last):
                raise Reject(422, f"click time {t:g} is negative or earlier than the previous click")
            c.execute("INSERT INTO clicks(participant, idx, attempt, event, x, y, t_client, received_at) "
                      "VALUES (?,?,?,?,?,?,?,?)", (pid, trial, attempt, event, x, y, t, time.time()))
            return {"trial": trial, "attempt": attempt, "order": n + 1}
        with self.tx() as c:
            return self._event(c, pid, event, "click", check)

    def choice(self, pid, event, trial, attempt, label, t, shown) -> dict:
        def check(cur):
            self._trial(cur, trial, attempt)
            if label not in (cur["true_label"], cur["foil_label"]):
                raise Reject(422, f"label {label} is not one of this trial's two labels")
            last, n = self._last_t(c, pid, trial, attempt)
            if t < 0 or (last is not None and t < last) or (shown is not None and not 0 <= shown <= t):
                raise Reject(422, "choice time is negative or earlier than the trial's clicks")
            c.execute("UPDATE trials SET chosen = ?, t_choice = ?, t_shown = ?, answered_at = ? "
                      "WHERE participant = ? AND idx = ?", (label, t, shown, time.time(), pid, trial))
            return {"trial": trial, "attempt": attempt, "count": n}
        with self.tx() as c:
            return self._event(c, pid, event, "choice", check)
