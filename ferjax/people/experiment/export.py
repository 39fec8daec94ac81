"""Experiment database -> click logs in the reference layout and ferjax's tidy format.

Only answered trials of the main sessions are exported (practice is not). A
trial's clicks are those of its final attempt; clicks of interrupted attempts
stay in the database, flagged. Times come from the browser's monotonic clock
(``performance.now()``, sent with every event): a click's ``time`` is seconds
since the attempt's first click, a trial's ``time`` is seconds from its first
click to the choice (from the face's appearance when there was no click).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ferjax.plumbing.errors import InputError


def frames(db) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(trials, clicks, dates)`` in the tidy columns of ``ferjax.people.clicklogs``, from the database at ``db``."""
    if not Path(db).is_file():
        raise InputError(db, None, "experiment database not found")
    conn = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
    try:
        t = pd.read_sql_query("""SELECT p.name AS participant, p.created, t.idx, t.filename, t.true_label AS "true",
              t.foil_label AS foil, t.chosen, t.attempt, t.t_choice, t.t_shown FROM trials t
              JOIN participants p ON p.id = t.participant WHERE t.block > 0 AND t.chosen IS NOT NULL
              ORDER BY p.id, t.idx""", conn)
        c = pd.read_sql_query("""SELECT p.name AS participant, t.filename, t.idx, c.x, c.y, c.t_client FROM clicks c
              JOIN trials t ON t.participant = c.participant AND t.idx = c.idx AND t.attempt = c.attempt
              JOIN participants p ON p.id = c.participant
              WHERE t.block > 0 AND t.chosen IS NOT NULL AND c.interrupted = 0 ORDER BY p.id, c.idx, c.id""", conn)
    except pd.errors.DatabaseError as err:
        raise InputError(db, None, f"not an experiment database: {err}") from None
    finally:
        conn.close()
    key = ["participant", "idx"]
    c["order"] = c.groupby(key).cumcount() + 1
    first = c.groupby(key)["t_client"].transform("min")
    c["time"] = np.round(c["t_client"] - first, 6)
    stats = c.groupby(key).agg(count=("order", "size"), first=("t_client", "min"))
    t = t.join(stats, on=key)
    t["count"] = t["count"].fillna(0).astype(np.int64)
    start = t["first"].fillna(t["t_shown"]).fillna(t["t_choice"])
    t["time"] = np.round(np.maximum(t["t_choice"] - start, 0.0), 6)
    t["correct"] = t["chosen"] == t["true"]
    dates = dict(zip(t["participant"], t["created"]))
    cols = ["participant", "filename", "true", "foil", "chosen", "correct", "time", "count"]
    clicks = c[["participant", "filename", "order", "x", "y", "time"]].reset_index(drop=True)
    return t[cols].reset_index(drop=True), clicks, dates


def export(db, out, fmt: str = "parquet") -> tuple[int, int]:
    """Write ``out/<yymmdd>_<participant>/{choices,clicks}.csv`` and ``out/tidy`` atomically -> (participants, trials)."""
    from ferjax.people.clicklogs import save_reference, save_tidy
    from ferjax.plumbing.files import atomic_path

    trials, clicks, dates = frames(db)
    with atomic_path(out, directory=True) as tmp:
        if len(trials):
            save_reference(trials, clicks, tmp, dates)
        save_tidy(trials, clicks, tmp / "tidy", fmt)
    return trials["participant"].nunique(), len(trials)


def export_zip(db) -> bytes:
    """The export as a zip archive (for the admin view's download)."""
    with tempfile.TemporaryDirectory() as d:
        export(db, Path(d) / "export")
        return Path(shutil.make_archive(str(Path(d) / "export"), "zip", Path(d) / "export")).read_bytes()
