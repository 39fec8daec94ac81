"""Exclusion rules: which participants and trials the analysis leaves out, and why.

Nothing is ever deleted: the rules pick rows to leave out of the maps and
scores, and the ``human`` stage writes the picks (``exclusions.csv``) and
their counts (``metrics/human.json``). The rules, with thresholds from
params.yaml's ``human`` section; each default excludes no one:

* ``completed_only``: leave out participants who did not finish;
* ``min_catch_accuracy``: leave out participants whose share of correctly
  answered attention checks (catch trials) is below this;
* ``min_rt``: leave out trials answered faster than this many seconds after
  the face appeared;
* ``max_fast_fraction``: leave out participants with a larger share of
  such fast trials than this.

The first two read ``participants.csv``, the last two ``responses.csv``,
which ``ferjax experiment export`` writes beside the logs. A rule that is
on while its file is missing is an error, never a silent keep-everyone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ferjax.plumbing.errors import InputError

RULES = {"completed_only": False, "min_catch_accuracy": 0.0, "min_rt": 0.0, "max_fast_fraction": 1.0}
NEEDS = {"participants.csv": ("participant", "status", "catch_total", "catch_failed"),
         "responses.csv": ("participant", "kind", "filename", "rt")}
COLUMNS = ["participant", "filename", "reason"]


def _table(logs, name: str, rule: str) -> pd.DataFrame:
    """``name`` beside the logs (a folder, or a tidy table's folder), checked; InputError if missing or bad."""
    folder = Path(logs) if Path(logs).is_dir() else Path(logs).parent
    path = folder / name
    if not path.is_file():
        raise InputError(path, None, f"not found, and the exclusion rule {rule} needs it",
                         "`ferjax experiment export` writes it beside the logs; or switch the rule off")
    df = pd.read_csv(path, dtype={"participant": str}, keep_default_na=False)
    if missing := [c for c in NEEDS[name] if c not in df.columns]:
        raise InputError(path, "header", f"missing column(s) {', '.join(missing)}")
    for col in set(NEEDS[name]) & {"catch_total", "catch_failed", "rt"}:
        num = pd.to_numeric(df[col], errors="coerce")
        if (bad := num.isna() | (num < 0)).any():
            i = int(bad.to_numpy().argmax())
            raise InputError(path, f"row {i + 1}", f"column '{col}': {df[col].iat[i]!r} is not a number >= 0")
        df[col] = num
    return df


def decide(trials: pd.DataFrame, logs, *, completed_only=False, min_catch_accuracy=0.0, min_rt=0.0,
           max_fast_fraction=1.0) -> pd.DataFrame:
    """The exclusions: rows ``(participant, filename, reason)``; filename "" leaves out the whole participant."""
    rows = []
    if completed_only or min_catch_accuracy > 0:
        rule = "completed_only" if completed_only else "min_catch_accuracy"
        people = _table(logs, "participants.csv", rule).set_index("participant")
        for name in trials["participant"].unique():
            if name not in people.index:
                raise InputError(Path(logs) / "participants.csv", f"participant {name}", "not in the table")
            p = people.loc[name]
            if completed_only and p["status"] != "completed":
                rows.append((name, "", "incomplete"))
            total = p["catch_total"]
            if min_catch_accuracy > 0 and total > 0 and (total - p["catch_failed"]) / total < min_catch_accuracy:
                rows.append((name, "", "catch_accuracy"))
    if min_rt > 0:
        r = _table(logs, "responses.csv", "min_rt")
        r = r[r["kind"] == "stimulus"].set_index(["participant", "filename"])["rt"]
        rt = r.reindex(pd.MultiIndex.from_frame(trials[["participant", "filename"]]))
        if (gap := rt.isna()).any():
            who, image = rt.index[int(gap.to_numpy().argmax())]
            raise InputError(Path(logs) / "responses.csv", f"participant {who}", f"no response time for {image}")
        fast = pd.Series((rt < min_rt).to_numpy(), index=trials.index)
        share = fast.groupby(trials["participant"]).mean()
        rows += [(name, "", "fast_trials") for name, s in share.items() if s > max_fast_fraction]
        rows += [(p, f, "too_fast") for p, f in trials.loc[fast, ["participant", "filename"]].itertuples(index=False)]
    return pd.DataFrame(rows, columns=COLUMNS)


def apply(trials, clicks, excluded: pd.DataFrame):
    """``(trials, clicks)`` without the excluded participants and trials."""
    people = set(excluded.loc[excluded["filename"] == "", "participant"])
    pairs = set(zip(excluded["participant"], excluded["filename"]))

    def keep(df):
        single = np.array([(p, f) in pairs for p, f in zip(df["participant"], df["filename"])], bool)
        return df[~df["participant"].isin(people).to_numpy() & ~single]

    return keep(trials).reset_index(drop=True), keep(clicks).reset_index(drop=True)


def summary(trials, excluded: pd.DataFrame, rules: dict) -> dict:
    """Counts for metrics/human.json: participants and trials before, left out, and why."""
    whole = excluded[excluded["filename"] == ""]
    gone = set(whole["participant"])
    with_them = int(trials["participant"].isin(gone).sum())
    single = excluded[(excluded["filename"] != "") & ~excluded["participant"].isin(gone)]
    return {"rules": dict(rules),
            "participants": {"before": int(trials["participant"].nunique()), "excluded": len(gone),
                             "reasons": {k: int(v) for k, v in whole["reason"].value_counts().sort_index().items()},
                             "excluded_ids": sorted(gone)},
            "trials": {"before": len(trials), "excluded": with_them + len(single),
                       "reasons": {"participant_excluded": with_them,
                                   **{k: int(v) for k, v in single["reason"].value_counts().sort_index().items()}}}}


def read(path) -> pd.DataFrame:
    """The exclusions the ``human`` stage wrote (``work/human/exclusions.csv``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "not found", "re-run `ferjax human` (dvc repro human)")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(df.columns) != COLUMNS:
        raise InputError(path, "header", f"expected {','.join(COLUMNS)}")
    return df
