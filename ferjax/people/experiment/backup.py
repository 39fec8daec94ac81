"""A consistent copy of the experiment database while the server keeps writing to it.

SQLite's online backup copies the database page by page. Done in one step
(``pages=-1``) it runs inside one read transaction, so the copy is a snapshot
of one moment: it holds every event committed before the backup began,
including those still in the write-ahead log, and no half transaction. The
server keeps committing meanwhile (a reader never blocks a WAL writer). A
stepwise backup would restart at every commit of the server and might never
finish. The source is opened read-only, the copy is written next to the
destination, checked (``integrity_check``), turned into one self-contained
file (no ``-wal``) and renamed into place, so a failed backup leaves no
partial file.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

from ferjax.plumbing.errors import InputError


def backup(db, out) -> dict:
    """Copy the database ``db`` to ``out`` -> {participants, trials answered, clicks, bytes, seconds}."""
    db, out = Path(db), Path(out)
    if not db.is_file():
        raise InputError(db, None, "experiment database not found")
    if out.exists() and out.resolve() == db.resolve():
        raise InputError(out, None, "the backup would overwrite the database itself")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp, t0 = Path(name), time.perf_counter()
    try:
        src = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)
        dst = sqlite3.connect(tmp)
        try:
            src.execute("PRAGMA busy_timeout=10000")
            src.backup(dst, pages=-1)
            seconds = time.perf_counter() - t0
            dst.execute("PRAGMA journal_mode=DELETE")  # the copy keeps the source's WAL flag otherwise
            if (ok := dst.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
                raise InputError(out, None, f"the copy failed its integrity check: {ok}")
            counts = {k: dst.execute(q).fetchone()[0] for k, q in (
                ("participants", "SELECT COUNT(*) FROM participants"),
                ("trials", "SELECT COUNT(*) FROM trials WHERE chosen IS NOT NULL"),
                ("clicks", "SELECT COUNT(*) FROM clicks"))}
        except sqlite3.DatabaseError as err:
            raise InputError(db, None, f"cannot back up: {err}") from None
        finally:
            src.close()
            dst.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {**counts, "bytes": out.stat().st_size, "seconds": round(seconds, 3)}
