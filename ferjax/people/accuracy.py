"""People's percent correct in the 2AFC task, from their trial table.

A trial counts as correct iff it was answered correctly after at least one
click: the reference program scored a trial with 0 clicks as wrong.
Intervals are Wilson 95% score intervals (:func:`ferjax.analysis.stats.wilson`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferjax.analysis import correlation, stats


def _hits(trials) -> np.ndarray:
    return trials["correct"].to_numpy(bool) & (trials["count"].to_numpy() > 0)


def score(trials) -> dict:
    """Percent correct (0-click trials wrong) with Wilson 95% intervals.

    Returns DataFrames keyed 'participant', 'image' (filename), 'class' (true),
    'pair' (true, foil) and 'overall': grouping keys + n, correct, accuracy, lo, hi.
    """
    df = trials.assign(_hit=_hits(trials))
    out = {}
    for name, keys in (("participant", ["participant"]), ("image", ["filename"]), ("class", ["true"]),
                       ("pair", ["true", "foil"]), ("overall", [])):
        g = (df.groupby(keys)["_hit"].agg(n="size", correct="sum").reset_index() if keys
             else pd.DataFrame({"n": [len(df)], "correct": [int(df["_hit"].sum())]}))
        g = g.astype({"n": np.int64, "correct": np.int64})
        g["accuracy"] = g["correct"] / g["n"].where(g["n"] > 0)
        g["lo"], g["hi"] = stats.wilson(g["correct"].to_numpy(), g["n"].to_numpy())
        out[name] = g
    return out


def _r(a, b) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):  # nan for a constant column
        return float(correlation.pearson(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def pair_stats(trials):
    """Per ordered pair (true, foil): n, accuracy, mean clicks (``count``), mean time; and
    Pearson r across pairs -> ``(table, {'accuracy_time', 'accuracy_clicks', 'clicks_time'})``."""
    t = trials.assign(_hit=_hits(trials)).groupby(["true", "foil"]).agg(
        n=("_hit", "size"), accuracy=("_hit", "mean"), clicks=("count", "mean"), time=("time", "mean")).reset_index()
    return t, {"accuracy_time": _r(t["accuracy"], t["time"]),
               "accuracy_clicks": _r(t["accuracy"], t["clicks"]),
               "clicks_time": _r(t["clicks"], t["time"])}
