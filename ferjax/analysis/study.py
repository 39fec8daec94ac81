"""The study-level comparison of people and the network (Park & Wallraven 2021, extended).

Park & Wallraven compared the 56 per-pair human maps with each method's maps
by the Dice coefficient and compared percent correct. Here every method and
baseline is scored per image and per pair against the human maps from all
trials and from correct trials only, with the metrics of
:mod:`ferjax.analysis.similarity`, bootstrap intervals and paired tests
(:mod:`ferjax.analysis.ranking`), and people's and the network's 2AFC answers are
compared on the same trials (exact McNemar tests, :mod:`ferjax.analysis.stats`). The answer
in words is :mod:`ferjax.analysis.verdict`'s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferjax.analysis import agreement, mapops, ranking, stats
from ferjax.faces import images
from ferjax.faces.labels import NAMES


def method_maps(attributions: dict, areas, size: int) -> dict:
    """Named method maps (N, size, size): cam/gradcam per target, EP per area and target."""
    out = {}
    for target in ("true", "contrast"):
        for method, label in (("cam", "CAM"), ("gradcam", "GradCAM")):
            if f"{method}_{target}" in attributions:   # no CAM for a head it cannot use
                out[f"{label} {target}"] = images.resize(attributions[f"{method}_{target}"], size)
        if f"ep_{target}" not in attributions:
            continue
        for a, area in enumerate(np.atleast_1d(areas)):
            out[f"EP {float(area):g} {target}"] = images.resize(attributions[f"ep_{target}"][:, a], size)
    return out


def run(human_maps: dict, attributions: dict, areas, trials, filenames, points, valid, *, ceiling: float,
        size: int = 128, n_boot: int = 2000, seed: int = 0) -> dict:
    """Score every method and baseline against the human maps; returns tables and the maps used.

    ``human_maps`` is the ``ferjax human`` output (``image_all``,
    ``image_correct`` in ``filenames`` order); ``attributions`` the
    ``ferjax attribute`` maps in the same order; ``points`` (N, K, 2) the
    clicks in the human frame with ``valid`` (N, K).
    """
    frame = human_maps["image_all"].shape[-1]
    methods = method_maps(attributions, areas, size)
    pts = np.minimum(np.floor(points * size / frame).astype(np.int32), size - 1)
    tables, by_class, pair_views = [], [], {}
    labels = trials.drop_duplicates("filename").set_index("filename").loc[list(filenames), "true"].to_numpy()
    for variant in ("all", "correct"):
        people = images.resize(human_maps[f"image_{variant}"], size)
        candidates = {**methods, **ranking.baselines(people, seed=seed)}
        scores = ranking.score(candidates, people, pts, valid)
        table = ranking.summarise(scores, ceiling=ceiling, n_boot=n_boot, seed=seed)
        tables.append(table.assign(level="image", human=variant))
        if variant == "all":
            image_scores = scores
        primary = scores[scores["metric"].isin([ranking.PRIMARY, "spearman"])]
        primary = primary.assign(expression=[NAMES[c] for c in labels[primary["item"]]])
        by_class.append(primary.groupby(["metric", "method", "expression"])["value"].mean().reset_index()
                        .assign(human=variant))
        # The reference study's level: 56 ordered-pair maps.
        pair_people, pairs = mapops.pair_maps(people, filenames, trials)
        pair_methods = {name: mapops.pair_maps(m, filenames, trials)[0] for name, m in methods.items()}
        pair_candidates = {**pair_methods, **ranking.baselines(pair_people, seed=seed)}
        pair_scores = ranking.score(pair_candidates, pair_people)
        tables.append(ranking.summarise(pair_scores, n_boot=n_boot, seed=seed).assign(level="pair", human=variant))
        pair_views[variant] = (pair_people, pair_methods, pairs)
    ranking_table = pd.concat(tables, ignore_index=True)
    cols = ["level", "human", "metric", "rank", "method", "mean", "lo", "hi", "n", "vs", "p_wilcoxon_holm",
            "p_permutation_holm"] + (["alignment"] if "alignment" in ranking_table else [])
    return {"ranking": ranking_table[cols], "by_class": pd.concat(by_class, ignore_index=True),
            "pairs": pair_views, "scores": image_scores, "labels": labels}


def accuracy(trials, stimuli_answers, seen=None) -> dict:
    """People's and the network's 2AFC percent correct, overall and per ordered pair.

    The network answers each stimulus once (deterministically); on a shared
    trial, a person's answer is paired with the network's answer to that
    stimulus, and the two are compared with an exact McNemar test (Holm over
    pairs). ``seen``: per-trial answers on what the person saw. Trials the
    network cannot answer (``correct`` missing: a class it does not know) are
    left out of the comparison; ``people_all`` is people's percent correct on
    every trial.
    """
    hits = trials["correct"].to_numpy(bool) & (trials["count"].to_numpy() > 0)
    model_ok = stimuli_answers.set_index("filename")["correct"].astype(float)
    every = trials.assign(people=hits, model=model_ok.loc[trials["filename"]].to_numpy())
    # a network that does not know a class (FER2013: contempt) is compared on the trials it can answer
    shared = every[every["model"].notna()].assign(model=lambda t: t["model"].astype(bool))
    if seen is not None:
        shared = shared.merge(seen[["participant", "filename", "model_seen"]].dropna(), on=["participant", "filename"])
        shared["model_seen"] = shared["model_seen"].astype(bool)
    rows = []
    for (t, f), g in shared.groupby(["true", "foil"]):
        test = stats.mcnemar(g["people"], g["model"])
        rows.append({"pair": f"{NAMES[t]} vs {NAMES[f]}", "true": t, "foil": f, "trials": len(g),
                     "people": g["people"].mean(), "model": g["model"].mean(),
                     "model_seen": g["model_seen"].mean() if "model_seen" in g else np.nan, "p_mcnemar": test["p"]})
    pairs = pd.DataFrame(rows)
    pairs["p_mcnemar_holm"] = stats.holm(pairs["p_mcnemar"])
    overall = stats.mcnemar(shared["people"], shared["model"])
    return {"pairs": pairs, "people": float(shared["people"].mean()), "people_all": float(every["people"].mean()),
            "trials_left_out": int(len(every) - len(shared)),
            "model": float(stimuli_answers["correct"].dropna().mean()),
            "model_seen": float(shared["model_seen"].mean()) if "model_seen" in shared else None,
            "mcnemar": overall}


def headline(table, acc, people_metrics) -> dict:
    """The numbers for metrics/compare.json: per method Dice@0.1 and Spearman (image level, all trials)."""
    sel = table[(table["level"] == "image") & (table["human"] == "all")]
    out = {"noise_ceiling": people_metrics["reliability"]["spearman_brown"], "methods": {}}
    for metric, key in ((ranking.PRIMARY, "dice"), ("spearman", "spearman")):
        for row in sel[sel["metric"] == metric].itertuples():
            entry = out["methods"].setdefault(row.method, {})
            entry[key] = {"mean": float(row.mean), "ci95": [float(row.lo), float(row.hi)], "rank": int(row.rank)}
            if key == "spearman":
                entry["alignment"] = float(row.alignment)
    pair_sel = table[(table["level"] == "pair") & (table["human"] == "all") & (table["metric"] == ranking.PRIMARY)]
    out["pair_level_dice"] = {r.method: float(r.mean) for r in pair_sel.itertuples()}
    out["accuracy"] = {"people": acc["people"], "model": acc["model"], "model_on_what_people_saw": acc["model_seen"],
                       "mcnemar_p": acc["mcnemar"]["p"], "people_all_trials": acc["people_all"],
                       "trials_left_out": acc["trials_left_out"]}
    return out


def methods_plot(table) -> pd.DataFrame:
    """Dice@0.1 per method with its interval (image level, all trials), ranked."""
    sel = table[(table["level"] == "image") & (table["human"] == "all") & (table["metric"] == ranking.PRIMARY)]
    return sel[["method", "mean", "lo", "hi"]].reset_index(drop=True)


def log_text(table, head) -> str:
    """The stage's log: the method ranking, the noise ceiling, people vs the network."""
    lines = [f"method ranking by {ranking.PRIMARY} vs human maps (per image, all trials; mean [95% CI]):"]
    for row in methods_plot(table).itertuples():
        sp = head["methods"][row.method].get("spearman", {}).get("mean", float("nan"))
        lines.append(f"  {row.Index + 1:2d}. {row.method:18s} {row.mean:.3f} [{row.lo:.3f}, {row.hi:.3f}]"
                     f"  spearman {sp:.3f}")
    acc = head["accuracy"]
    seen = acc["model_on_what_people_saw"]
    lines.append(f"noise ceiling (split-half Spearman-Brown): {head['noise_ceiling']:.3f}")
    lines.append(f"2AFC percent correct: people {acc['people']:.3f}, network {acc['model']:.3f}"
                 + (f", network on what people saw {seen:.3f}" if seen is not None else "")
                 + f" (McNemar p = {acc['mcnemar_p']:.2g})")
    return "\n".join(lines)


def trial_agreement(trials, stimuli_answers, seen=None, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Error consistency and performance concordance of people and the network (:mod:`ferjax.analysis.agreement`).

    ``stimuli_answers``: the network's correctness per stimulus (full face;
    missing where it does not know a class: those stimuli are left out);
    ``seen``: its correctness on what each person saw, per (participant, filename).
    """
    answered = stimuli_answers.dropna(subset=["correct"])
    r, v, people, items = agreement.outcomes(trials[trials["filename"].isin(answered["filename"])])
    model = answered.drop_duplicates("filename").set_index("filename")["correct"].reindex(items).astype(bool)
    s = None
    if seen is not None:
        s = np.zeros_like(r)
        row, col = {p: i for i, p in enumerate(people)}, {f: j for j, f in enumerate(items)}
        for p, f, ok in zip(seen["participant"].astype(str), seen["filename"], seen["model_seen"].astype(bool)):
            if f in col and p in row:   # the network's answers for excluded participants are not compared
                s[row[p], col[f]] = ok
    out = agreement.network_vs_people(r, v, model.to_numpy(bool), s, n_boot=n_boot, seed=seed)
    out["participants"] = people
    return out


def confusions(pairs) -> dict:
    """2AFC confusion matrices (8, 8): share of trials on which the foil (column) was chosen over the true
    class (row), for people, the network on the full faces and on what people saw; nan off the trial list."""
    out = {}
    for key in ("people", "model", "model_seen"):
        m = np.full((len(NAMES), len(NAMES)), np.nan)
        if key in pairs and pairs[key].notna().any():
            for row in pairs.itertuples():
                m[row.true, row.foil] = 1 - getattr(row, key)
            out[key] = m
    return out


def format_p(p: float) -> str:
    """A p-value as a reader expects it: ``p < 0.001`` below a thousandth, else three significant digits."""
    if not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"
