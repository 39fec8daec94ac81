"""Experiment database -> click logs in the reference layout and ferjax's tidy format.

Only answered stimulus trials of the main sessions go into the reference
layout and the tidy tables (practice and catch trials never do, so that they
are never analysed as stimuli). A trial's clicks are those of its final
attempt; clicks of interrupted attempts stay in the database, flagged. Times
come from the browser's monotonic clock (``performance.now()``, sent with
every event): a click's ``time`` is seconds since the attempt's first click,
a trial's ``time`` is seconds from its first click to the choice (from the
face's appearance when there was no click), its ``rt`` seconds from the face's
appearance to the choice.

Beside them, for the ``human`` stage's exclusion rules (both at the top and in ``tidy/``):
``participants.csv`` (participant, created, platform, status, catch_total,
catch_failed, the last page load's browser and screen) and ``responses.csv``
(every answered main-session trial, stimulus and catch: participant, kind,
filename, true, foil, chosen, correct, rt). Platform ids only with ``platform_ids=True``.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ferjax.plumbing.errors import InputError

IDS = ["platform_pid", "study_id", "session_id"]


def tables(db) -> dict[str, pd.DataFrame]:
    """Every answered trial, every click and every participant of the database at ``db``, with times computed."""
    if not Path(db).is_file():
        raise InputError(db, None, "experiment database not found")
    conn = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
    if "kind" not in {r[1] for r in conn.execute("PRAGMA table_info(trials)")}:
        conn.close()  # a database of ferjax 0.1, never opened by this version: add the new columns first
        from ferjax.people.experiment.db import Store
        Store(db).close()
        conn = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
    try:
        t = pd.read_sql_query("""SELECT p.name AS participant, p.created, t.idx, t.block, t.kind, t.filename,
              t.true_label AS "true", t.foil_label AS foil, t.chosen, t.attempt, t.t_choice, t.t_shown FROM trials t
              JOIN participants p ON p.id = t.participant WHERE t.chosen IS NOT NULL ORDER BY p.id, t.idx""", conn)
        c = pd.read_sql_query("""SELECT p.name AS participant, t.filename, t.idx, c.attempt, c.x, c.y, c.t_client,
              c.interrupted, c.attempt = t.attempt AND t.chosen IS NOT NULL AS final FROM clicks c
              JOIN trials t ON t.participant = c.participant AND t.idx = c.idx
              JOIN participants p ON p.id = c.participant ORDER BY p.id, c.idx, c.attempt, c.id""", conn)
        people = pd.read_sql_query("""SELECT p.name AS participant, p.created, p.platform, p.platform_pid,
              p.study_id, p.session_id, CASE WHEN p.completed_at IS NULL THEN 'started' ELSE 'completed' END AS status,
              (SELECT COUNT(*) FROM trials t WHERE t.participant = p.id AND t.kind = 'catch'
                 AND t.chosen IS NOT NULL) AS catch_total,
              (SELECT COUNT(*) FROM trials t WHERE t.participant = p.id AND t.kind = 'catch'
                 AND t.chosen IS NOT NULL AND t.chosen != t.true_label) AS catch_failed,
              e.user_agent AS browser, e.screen_w, e.screen_h, e.viewport_w, e.viewport_h, e.dpr
              FROM participants p LEFT JOIN environments e ON e.rowid = (SELECT MAX(rowid) FROM environments
              WHERE participant = p.id) ORDER BY p.id""", conn)
    except pd.errors.DatabaseError as err:
        raise InputError(db, None, f"not an experiment database: {err}") from None
    finally:
        conn.close()
    key = ["participant", "idx", "attempt"]
    c["order"] = c.groupby(key).cumcount() + 1
    c["time"] = np.round(c["t_client"] - c.groupby(key)["t_client"].transform("min"), 6)
    final = c[c["final"] == 1]
    stats = final.groupby(["participant", "idx"]).agg(count=("order", "size"), first=("t_client", "min"))
    t = t.join(stats, on=["participant", "idx"])
    t["count"] = t["count"].fillna(0).astype(np.int64)
    shown = t["t_shown"].astype(float).fillna(t["first"]).fillna(t["t_choice"])
    t["time"] = np.round(np.maximum(t["t_choice"] - t["first"].fillna(shown), 0.0), 6)
    t["rt"] = np.round(np.maximum(t["t_choice"] - shown, 0.0), 6)
    t["correct"] = t["chosen"] == t["true"]
    return {"trials": t, "clicks": c, "participants": people}


def frames(db) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(trials, clicks, dates)`` in the tidy columns of ``ferjax.people.clicklogs``: main-session stimulus
    trials, and the clicks of their final attempts."""
    tab = tables(db)
    t, c = tab["trials"], tab["clicks"]
    t = t[(t["block"] > 0) & (t["kind"] == "stimulus")]
    c = c.merge(t[["participant", "idx"]], on=["participant", "idx"])
    c = c[c["final"] == 1]
    dates = dict(zip(t["participant"], t["created"]))
    cols = ["participant", "filename", "true", "foil", "chosen", "correct", "time", "count"]
    clicks = c[["participant", "filename", "order", "x", "y", "time"]].reset_index(drop=True)
    return t[cols].reset_index(drop=True), clicks, dates


def quality(db, platform_ids: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(participants, responses)`` as the module docstring describes them."""
    tab = tables(db)
    people = tab["participants"] if platform_ids else tab["participants"].drop(columns=IDS)
    t = tab["trials"]
    responses = t[t["block"] > 0][["participant", "kind", "filename", "true", "foil", "chosen", "correct", "rt"]]
    return people.reset_index(drop=True), responses.reset_index(drop=True)


def export(db, out, fmt: str = "parquet", platform_ids: bool = False) -> tuple[int, int]:
    """Write ``out/<yymmdd>_<participant>/{choices,clicks}.csv``, ``out/tidy`` and the quality tables
    atomically -> (participants, trials)."""
    from ferjax.people.clicklogs import save_reference, save_tidy
    from ferjax.plumbing.files import atomic_path

    trials, clicks, dates = frames(db)
    people, responses = quality(db, platform_ids)
    with atomic_path(out, directory=True) as tmp:
        if len(trials):
            save_reference(trials, clicks, tmp, dates)
        save_tidy(trials, clicks, tmp / "tidy", fmt)
        for folder in (tmp, tmp / "tidy"):
            people.to_csv(folder / "participants.csv", index=False, lineterminator="\n")
            responses.to_csv(folder / "responses.csv", index=False, lineterminator="\n")
    return trials["participant"].nunique(), len(trials)


def export_zip(db) -> bytes:
    """The export as a zip archive (for the admin view's download)."""
    with tempfile.TemporaryDirectory() as d:
        export(db, Path(d) / "export")
        return Path(shutil.make_archive(str(Path(d) / "export"), "zip", Path(d) / "export")).read_bytes()
