"""Experiment database -> a Psych-DS dataset, the emerging standard for sharing behavioural data.

  OUT/dataset_description.json   schema.org Dataset: name, description, schemaVersion and every
                                 column of every data file in variableMeasured
  OUT/README.md
  OUT/data/study-<S>_description-participants_data.csv
  OUT/data/study-<S>_subject-<P>_task-reveal_description-trials_data.csv
  OUT/data/study-<S>_subject-<P>_task-reveal_description-clicks_data.csv

File names follow Psych-DS's keyword convention (``key-value`` pairs, values
letters and digits only, ending ``_data.csv``). Unlike the reference layout,
a Psych-DS dataset is the complete primary data: practice, catch and stimulus
trials (``trial_type``), and every click received (``interrupted`` for
attempts that a reload restarted). Nothing identifies a participant: the
subject is ferjax's own name (P001); platform ids only with ``platform_ids=True``.
:func:`check` tests the core rules of the format (the official validator is
not installable from PyPI or npm).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from ferjax.people.experiment.export import IDS, tables
from ferjax.plumbing.files import atomic_path

SCHEMA_VERSION = "Psych-DS 1.5.0"
DATAFILE = re.compile(r"[a-z]+-[a-zA-Z0-9]+(_[a-z]+-[a-zA-Z0-9]+)*_data\.csv")
VARIABLES = {  # column -> (description, unit)
    "subject": ("Participant, ferjax's own name (P001...); no platform ids", None),
    "created": ("Date the participant was made, yymmdd", None),
    "platform": ("How they came: link (a printed link), prolific, generic (?pid=)", None),
    "platform_pid": ("The recruitment platform's participant id (only when exported on request)", None),
    "study_id": ("Prolific's STUDY_ID (only when exported on request)", None),
    "session_id": ("Prolific's SESSION_ID (only when exported on request)", None),
    "status": ("completed, or started (not finished)", None),
    "catch_total": ("Attention-check (catch) trials answered", None),
    "catch_failed": ("Catch trials answered against the instruction", None),
    "browser": ("User agent of the last page load", None),
    "screen_w": ("Screen width", "CSS px"), "screen_h": ("Screen height", "CSS px"),
    "viewport_w": ("Window width at the browser check", "CSS px"),
    "viewport_h": ("Window height at the browser check", "CSS px"),
    "dpr": ("Device pixel ratio", None),
    "trial": ("Trial index in the participant's schedule, from 0", None),
    "block": ("0 practice, 1..S the sessions", None),
    "trial_type": ("practice, stimulus, or catch (an attention check: press the instructed label)", None),
    "filename": ("Stimulus image, <true label>/<name>", None),
    "true": ("True label 0..7 (AffectNet's numbering); for a catch trial the instructed label", None),
    "foil": ("The other button's label 0..7", None),
    "chosen": ("Label chosen", None),
    "correct": ("1 if chosen equals true", None),
    "attempt": ("How often the trial was started (a reload restarts it)", None),
    "count": ("Clicks in the trial's final attempt", None),
    "time": (("Trial: from its first click (or the face's appearance) to the choice; click: since the "
              "attempt's first click"), "s"),
    "rt": ("From the face's appearance to the choice (performance.now)", "s"),
    "order": ("Click number within its attempt, from 1", None),
    "x": ("Click column in the 256x256 display frame", "px"), "y": ("Click row in the display frame", "px"),
    "interrupted": ("1 if the click's attempt was restarted by a reload", None),
}
PEOPLE = ["subject", "created", "platform", *IDS, "status", "catch_total", "catch_failed", "browser", "screen_w",
          "screen_h", "viewport_w", "viewport_h", "dpr"]
TRIALS = ["subject", "trial", "block", "trial_type", "filename", "true", "foil", "chosen", "correct", "attempt",
          "count", "time", "rt"]
CLICKS = ["subject", "trial", "attempt", "order", "filename", "x", "y", "time", "interrupted"]


def keyword(value: str) -> str:
    """``value`` as a Psych-DS keyword value (letters and digits only)."""
    v = re.sub(r"[^A-Za-z0-9]", "", str(value))
    if not v:
        raise ValueError(f"{value!r} has no letter or digit to name a Psych-DS file with")
    return v


def export_psychds(db, out, study: str = "ferjax", platform_ids: bool = False) -> int:
    """Write the dataset at ``out`` atomically -> the number of participants."""
    tab, study = tables(db), keyword(study)
    t, c = tab["trials"].rename(columns={"participant": "subject", "idx": "trial"}), tab["clicks"]
    t["trial_type"] = t["kind"].where(t["block"] > 0, "practice")
    t["correct"] = t["correct"].astype(int)
    c = c.rename(columns={"participant": "subject", "idx": "trial"})
    people = tab["participants"].rename(columns={"participant": "subject"})
    columns = [k for k in PEOPLE if platform_ids or k not in IDS]
    with atomic_path(out, directory=True) as tmp:
        (tmp / "data").mkdir()
        people[columns].to_csv(tmp / "data" / f"study-{study}_description-participants_data.csv", index=False,
                               lineterminator="\n")
        for name in people["subject"]:
            stem = tmp / "data" / f"study-{study}_subject-{keyword(name)}_task-reveal"
            t[t["subject"] == name][TRIALS].to_csv(f"{stem}_description-trials_data.csv", index=False,
                                                   lineterminator="\n")
            c[c["subject"] == name][CLICKS].to_csv(f"{stem}_description-clicks_data.csv", index=False,
                                                   lineterminator="\n")
        used = [k for k in VARIABLES if k in columns or k in TRIALS or k in CLICKS]
        desc = {"@context": "https://schema.org/", "@type": "Dataset", "name": f"ferjax reveal-by-click study {study}",
                "description": ("Two-alternative forced choice between two facial-expression labels. Each face is "
                                "shown in grayscale under a 70x70 box blur at 256x256 px; each click uncovers a disk "
                                "of radius 15 px of the colour original. Exported by ferjax from its experiment "
                                "database."),
                "schemaVersion": SCHEMA_VERSION,
                "variableMeasured": [{"@type": "PropertyValue", "name": k, "description": VARIABLES[k][0],
                                      **({"unitText": VARIABLES[k][1]} if VARIABLES[k][1] else {})} for k in used]}
        (tmp / "dataset_description.json").write_text(json.dumps(desc, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(f"# {desc['name']}\n\n{desc['description']}\n\ndata/ holds one participants "
                                       "table and, per participant, a trials and a clicks table. "
                                       "dataset_description.json describes every column.\n", encoding="utf-8")
    return len(people)


def check(out) -> list[str]:
    """The core Psych-DS rules (description, data folder, file names, every column described) -> problems."""
    out, problems = Path(out), []
    try:
        desc = json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return [f"dataset_description.json: {err}"]
    if str(desc.get("@context", "")).rstrip("/").split("://")[-1].removeprefix("www.") != "schema.org":
        problems.append("@context must be schema.org")
    if desc.get("@type") != "Dataset":
        problems.append("@type must be Dataset")
    problems += [f"{key} missing" for key in ("name", "description", "variableMeasured") if not desc.get(key)]
    described = {v if isinstance(v, str) else v.get("name") for v in desc.get("variableMeasured", [])}
    files = sorted((out / "data").rglob("*.csv"))
    if not files:
        problems.append("no data files in data/")
    for f in files:
        if not DATAFILE.fullmatch(f.name):
            problems.append(f"{f.name}: not named key-value_..._data.csv")
        with open(f, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if extra := sorted(set(rows[0] if rows else []) - described):
            problems.append(f"{f.name}: columns not in variableMeasured: {', '.join(extra)}")
        if any(len(r) != len(rows[0]) for r in rows[1:]):
            problems.append(f"{f.name}: rows of different lengths")
    return problems
