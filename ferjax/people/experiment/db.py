"""The experiment's SQLite store (WAL, synchronous=FULL): every event is committed before it is acknowledged.

Tables: ``participants`` (name, secret token, schedule seed, creation date;
for the public study link also the platform and its ids, and when they
consented and completed), ``trials`` (each participant's stored schedule;
``kind`` is ``stimulus`` or ``catch``; ``attempt`` counts how often the trial
was started; ``chosen`` is set once it is answered), ``clicks`` (every click
ever received, with its attempt; clicks of an earlier attempt are flagged
``interrupted`` when the trial is restarted), ``events`` (the ack returned for
each client event id, so that a replayed id gets the same ack and changes
nothing), ``environments`` (browser and screen, one row per page load) and
``counters`` (declined consents: a count and nothing else). Validation
failures raise :class:`Reject` (status, message) and leave the database
unchanged. Who takes part is :class:`~ferjax.people.experiment.roster.Roster`'s.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time

from ferjax.people.experiment.design import SIZE
from ferjax.people.experiment.roster import Reject, Roster

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
CREATE TABLE IF NOT EXISTS environments(participant INTEGER NOT NULL REFERENCES participants(id), at REAL NOT NULL,
  user_agent TEXT NOT NULL, screen_w INTEGER NOT NULL, screen_h INTEGER NOT NULL, viewport_w INTEGER NOT NULL,
  viewport_h INTEGER NOT NULL, dpr REAL NOT NULL, touch INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""
# Columns added after version 0.1. A database made by 0.1 gets them on open (ALTER TABLE), a new one too,
# so that each column is declared here only.
ADDED = {"participants": ["platform TEXT NOT NULL DEFAULT 'link'", "platform_pid TEXT", "study_id TEXT",
                          "session_id TEXT", "consented_at REAL", "completed_at REAL"],
         "trials": ["kind TEXT NOT NULL DEFAULT 'stimulus'"]}
# One participant per platform id (and Prolific study): two tabs consenting at once still make one.
INDEXES = """CREATE UNIQUE INDEX IF NOT EXISTS participants_platform
  ON participants(platform, COALESCE(study_id, ''), platform_pid) WHERE platform_pid IS NOT NULL;"""


class Store(Roster):
    """One connection, serialised by a lock; each write is one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, path):
        self.path = str(path)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.executescript(SCHEMA)
        for table, columns in ADDED.items():
            have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}
            for col in columns:
                if col.split()[0] not in have:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {col}")
        self.conn.executescript(INDEXES)
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
                                                 "n": cur["idx"] - first + 1, "m": blocks[cur["block"]][0],
                                                 "kind": cur["kind"],
                                                 # a catch trial's instruction: press its "true" label
                                                 "press": cur["true_label"] if cur["kind"] == "catch" else None}}

    def trial_image(self, pid, idx: int) -> tuple[str, str]:
        """``(filename, kind)`` of the participant's own trial ``idx`` (any of theirs: pages preload them all)."""
        rows = self.q("SELECT filename, kind FROM trials WHERE participant = ? AND idx = ?", (pid, idx))
        if not rows:
            raise Reject(404, f"you have no trial {idx}")
        return rows[0]["filename"], rows[0]["kind"]

    def images(self, pid) -> list[int]:
        """Indices of the participant's unanswered trials, in order (what the page preloads)."""
        return [r[0] for r in self.q("SELECT idx FROM trials WHERE participant = ? AND chosen IS NULL ORDER BY idx",
                                     (pid,))]

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
            now = time.time()
            c.execute("UPDATE trials SET chosen = ?, t_choice = ?, t_shown = ?, answered_at = ? "
                      "WHERE participant = ? AND idx = ?", (label, t, shown, now, pid, trial))
            if self._current(c, pid) is None:  # the last trial: completed in the same transaction
                c.execute("UPDATE participants SET completed_at = ? WHERE id = ? AND completed_at IS NULL", (now, pid))
            return {"trial": trial, "attempt": attempt, "count": n}
        with self.tx() as c:
            return self._event(c, pid, event, "choice", check)
