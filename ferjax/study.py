"""The study-level comparison of people and the network (Park & Wallraven 2021, extended).

Park & Wallraven compared the 56 per-pair human maps with each method's maps
by the Dice coefficient and compared percent correct. Here every method and
baseline is scored per image and per pair against the human maps from all
trials and from correct trials only, with the metrics of
:mod:`ferjax.compare`, bootstrap intervals and paired tests
(:mod:`ferjax.ranking`), and people's and the network's 2AFC answers are
compared on the same trials (exact McNemar tests, :mod:`ferjax.stats`).
"""

from __future__ import annotations

import html
import json

import jax
import numpy as np
import pandas as pd

from ferjax import human, ranking, stats
from ferjax import report as doc
from ferjax.labels import NAMES


def _resize(maps, size):
    """Bilinear (antialiased) resize of maps (N, H, W) to (N, size, size)."""
    maps = np.asarray(maps, np.float32)
    if maps.shape[-1] == size:
        return maps
    return np.asarray(jax.image.resize(maps, (maps.shape[0], size, size), "linear", antialias=True))


def method_maps(attributions: dict, areas, size: int) -> dict:
    """Named method maps (N, size, size): cam/gradcam per target, EP per area and target."""
    out = {}
    for target in ("true", "contrast"):
        for method, label in (("cam", "CAM"), ("gradcam", "GradCAM")):
            out[f"{label} {target}"] = _resize(attributions[f"{method}_{target}"], size)
        if f"ep_{target}" not in attributions:
            continue
        for a, area in enumerate(np.atleast_1d(areas)):
            out[f"EP {float(area):g} {target}"] = _resize(attributions[f"ep_{target}"][:, a], size)
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
        people = _resize(human_maps[f"image_{variant}"], size)
        candidates = {**methods, **ranking.baselines(people, seed=seed)}
        scores = ranking.score(candidates, people, pts, valid)
        table = ranking.summarise(scores, ceiling=ceiling, n_boot=n_boot, seed=seed)
        tables.append(table.assign(level="image", human=variant))
        primary = scores[scores["metric"].isin([ranking.PRIMARY, "spearman"])]
        primary = primary.assign(expression=[NAMES[c] for c in labels[primary["item"]]])
        by_class.append(primary.groupby(["metric", "method", "expression"])["value"].mean().reset_index()
                        .assign(human=variant))
        # The reference study's level: 56 ordered-pair maps.
        pair_people, pairs = human.pair_maps(people, filenames, trials)
        pair_methods = {name: human.pair_maps(m, filenames, trials)[0] for name, m in methods.items()}
        pair_candidates = {**pair_methods, **ranking.baselines(pair_people, seed=seed)}
        pair_scores = ranking.score(pair_candidates, pair_people)
        tables.append(ranking.summarise(pair_scores, n_boot=n_boot, seed=seed).assign(level="pair", human=variant))
        pair_views[variant] = (pair_people, pair_methods, pairs)
    ranking_table = pd.concat(tables, ignore_index=True)
    cols = ["level", "human", "metric", "rank", "method", "mean", "lo", "hi", "n", "vs", "p_wilcoxon_holm",
            "p_permutation_holm"] + (["alignment"] if "alignment" in ranking_table else [])
    return {"ranking": ranking_table[cols], "by_class": pd.concat(by_class, ignore_index=True),
            "pairs": pair_views}


def accuracy(trials, stimuli_answers, seen=None) -> dict:
    """People's and the network's 2AFC percent correct, overall and per ordered pair.

    The network answers each stimulus once (deterministically); on a shared
    trial, a person's answer is paired with the network's answer to that
    stimulus, and the two are compared with an exact McNemar test (Holm over
    pairs). ``seen``: per-trial answers on what the person saw.
    """
    hits = trials["correct"].to_numpy(bool) & (trials["count"].to_numpy() > 0)
    model_ok = stimuli_answers.set_index("filename")["correct"]
    shared = trials.assign(people=hits, model=model_ok.loc[trials["filename"]].to_numpy(bool))
    if seen is not None:
        shared = shared.merge(seen[["participant", "filename", "model_seen"]], on=["participant", "filename"])
    rows = []
    for (t, f), g in shared.groupby(["true", "foil"]):
        test = stats.mcnemar(g["people"], g["model"])
        rows.append({"pair": f"{NAMES[t]} vs {NAMES[f]}", "true": t, "foil": f, "trials": len(g),
                     "people": g["people"].mean(), "model": g["model"].mean(),
                     "model_seen": g["model_seen"].mean() if "model_seen" in g else np.nan, "p_mcnemar": test["p"]})
    pairs = pd.DataFrame(rows)
    pairs["p_mcnemar_holm"] = stats.holm(pairs["p_mcnemar"])
    overall = stats.mcnemar(shared["people"], shared["model"])
    return {"pairs": pairs, "people": float(shared["people"].mean()),
            "model": float(stimuli_answers["correct"].mean()),
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
                       "mcnemar_p": acc["mcnemar"]["p"]}
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


def build_report(result, acc, head, faces, *, provenance) -> str:
    """The self-contained HTML report (see :mod:`ferjax.report`).

    ``faces``: the mean face of each ordered pair, in the order of the pair
    maps of ``result``, at their resolution.
    """
    from ferjax import figures

    rank = result["ranking"]
    sections = [("Study", "<p>People and a network did the same 2AFC facial-expression task "
                          "(Park &amp; Wallraven 2021). Data: see parameters below; the embedded default "
                          "study is synthetic (rendered faces, simulated participants).</p>"
                 + doc.table(pd.DataFrame([{"noise ceiling": head["noise_ceiling"], **{
                     f"percent correct, {k}": v for k, v in head["accuracy"].items() if isinstance(v, float)}}])))]
    sections.append(("Method ranking (per image, all trials)",
                     doc.table(rank[(rank.level == "image") & (rank.human == "all") &
                                     rank.metric.isin([ranking.PRIMARY, "spearman", "auc_judd"])].drop(
                         columns=["level", "human"]))))
    sections.append(("Method ranking (56 pair maps, the reference study's level)",
                     doc.table(rank[(rank.level == "pair") & (rank.metric == ranking.PRIMARY)].drop(
                         columns=["level"]))))
    by_class = result["by_class"]
    sel = by_class[(by_class["metric"] == ranking.PRIMARY) & (by_class["human"] == "all")]
    if len(sel):
        wide = sel.pivot(index="method", columns="expression", values="value")
        wide = wide[[n for n in NAMES if n in wide.columns]].reset_index()
        sections.append((f"Per expression: mean {ranking.PRIMARY} vs human maps (per image, all trials)",
                         doc.table(wide)))
    sections.append(("Accuracy per pair: people vs network", doc.table(acc["pairs"])))
    people, pair_methods, pairs = result["pairs"]["all"]
    names = list(pair_methods)
    figs = []
    for c in range(len(NAMES)):
        tiles, labels = [], []
        for p, (t, f) in enumerate(np.asarray(pairs)):
            if t != c:
                continue
            face = faces[p]
            tiles += [np.repeat(face[..., None], 3, -1), figures.overlay(face, people[p])]
            tiles += [figures.overlay(face, pair_methods[n][p]) for n in names]
            labels += [f"{NAMES[t]} vs {NAMES[f]}", "people"] + names
        if tiles:
            figs.append(doc.figure(figures.grid(tiles, labels, cols=len(names) + 2),
                                    f"{NAMES[c]}: mean face, human map, each method's map, per foil",
                                    f"pair maps for {NAMES[c]}"))
    sections.append(("Pair maps: mean face, people, methods", "".join(figs)))
    sections.append(("Parameters and versions",
                     "<pre>" + html.escape(json.dumps(provenance, indent=2, sort_keys=True)) + "</pre>"))
    return doc.page("ferjax report", sections, subtitle="Humans vs network on 2AFC facial-expression recognition")
