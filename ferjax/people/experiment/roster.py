"""Who takes part: participants made ahead (printed links) or on consent (the public study link).

:class:`Roster` is the participant half of the experiment's store
(:class:`~ferjax.people.experiment.db.Store` adds the trial events). A
participant from the study link is made only once they agree to the consent
form, and only once per platform id: a second consent with the same id (a
reload, a second tab) returns the first participant. Declining stores nothing
but one more in the ``declined`` counter. A participant is completed in the
transaction that answers their last trial.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time

from ferjax.people.experiment.design import schedule


class Reject(Exception):
    """A request the server refuses: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Roster:
    """Participant methods of the store; needs ``self.tx()`` and ``self.q()``."""

    def _insert(self, c, trials, sched: dict, **identity) -> tuple[str, str]:
        k = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM participants").fetchone()[0]
        name, token = f"P{k:03d}", secrets.token_urlsafe(24)
        seed = sched.get("seed")
        s = secrets.randbits(63) if seed is None else int(seed) + k
        cols = {"id": k, "name": name, "token": token, "seed": s, "created": dt.date.today().strftime("%y%m%d"),
                **identity}
        c.execute(f"INSERT INTO participants({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                  tuple(cols.values()))
        rows = schedule(trials, s, sched.get("practice", 0), sched.get("sessions", 1), sched.get("catch_every", 0))
        c.executemany("INSERT INTO trials(participant, idx, block, filename, true_label, foil_label, true_left, kind) "
                      "VALUES (?,?,?,?,?,?,?,?)", [(k, *row) for row in rows])
        return name, token

    def add_participants(self, n, trials, *, practice, sessions, seed=None, catch_every=0) -> list[tuple[str, str]]:
        """Create ``n`` participants with random tokens and stored schedules -> [(name, token)]."""
        sched = {"practice": practice, "sessions": sessions, "seed": seed, "catch_every": catch_every}
        with self.tx() as c:
            return [self._insert(c, trials, sched) for _ in range(n)]

    def enrol(self, trials, sched: dict, platform: str, platform_pid: str, study_id=None, session_id=None) -> dict:
        """The participant of this platform id, made now (consent given) if new -> their row as a dict."""
        find = ("SELECT * FROM participants WHERE platform = ? AND platform_pid = ? "
                "AND COALESCE(study_id, '') = COALESCE(?, '')")
        with self.tx() as c:
            old = c.execute(find, (platform, platform_pid, study_id)).fetchone()
            if old is None:
                self._insert(c, trials, sched, platform=platform, platform_pid=platform_pid, study_id=study_id,
                             session_id=session_id, consented_at=time.time())
                old = c.execute(find, (platform, platform_pid, study_id)).fetchone()
            return dict(old)

    def find(self, platform: str, platform_pid: str, study_id=None) -> dict | None:
        rows = self.q("SELECT * FROM participants WHERE platform = ? AND platform_pid = ? "
                      "AND COALESCE(study_id, '') = COALESCE(?, '')", (platform, platform_pid, study_id))
        return dict(rows[0]) if rows else None

    def decline(self) -> None:
        """Count one declined consent; nothing else about the person is stored."""
        with self.tx() as c:
            c.execute("INSERT INTO counters VALUES ('declined', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1")

    def participant(self, token: str):
        rows = self.q("SELECT id, name FROM participants WHERE token = ?", (token,))
        return rows[0] if rows else None

    def environment(self, pid, env: dict) -> None:
        """Record the browser and screen of one page load."""
        with self.tx() as c:
            c.execute("INSERT INTO environments VALUES (?,?,?,?,?,?,?,?,?)",
                      (pid, time.time(), env["user_agent"], env["screen_w"], env["screen_h"], env["viewport_w"],
                       env["viewport_h"], env["dpr"], int(env["touch"])))

    def completion(self, pid) -> dict:
        """Platform, platform id, completion time and catch-trial results of one participant."""
        row = self.q("""SELECT p.platform, p.platform_pid, p.completed_at,
                 COALESCE(SUM(t.kind = 'catch' AND t.chosen IS NOT NULL), 0) AS catch_total,
                 COALESCE(SUM(t.kind = 'catch' AND t.chosen IS NOT NULL AND t.chosen != t.true_label), 0) AS catch_failed
                 FROM participants p LEFT JOIN trials t ON t.participant = p.id WHERE p.id = ? GROUP BY p.id""", (pid,))
        return dict(row[0])

    def progress(self) -> list[dict]:
        rows = self.q("""SELECT p.name, p.token, p.created, p.platform, p.completed_at IS NOT NULL AS completed,
                  SUM(t.block = 0) AS practice, SUM(t.block = 0 AND t.chosen IS NOT NULL) AS practice_done,
                  SUM(t.block > 0) AS total, SUM(t.block > 0 AND t.chosen IS NOT NULL) AS done,
                  SUM(t.kind = 'catch' AND t.chosen IS NOT NULL AND t.chosen != t.true_label) AS catch_failed,
                  SUM(t.attempt > 0) > 0 OR p.consented_at IS NOT NULL AS started, MAX(t.answered_at) AS last
                  FROM participants p JOIN trials t ON t.participant = p.id GROUP BY p.id ORDER BY p.id""")
        return [dict(r) for r in rows]

    def counts(self, catch_failures: int) -> dict:
        """Started, completed, excluded (completed with ``catch_failures`` or more failed catch trials),
        declined and in progress (started, not completed) participants; links never opened are not started."""
        rows = self.progress()
        declined = self.q("SELECT n FROM counters WHERE name = 'declined'")
        done = [r for r in rows if r["completed"]]
        return {"started": sum(bool(r["started"]) for r in rows), "completed": len(done),
                "excluded": sum(catch_failures > 0 and r["catch_failed"] >= catch_failures for r in done),
                "declined": declined[0][0] if declined else 0,
                "in_progress": sum(bool(r["started"]) and not r["completed"] for r in rows)}
