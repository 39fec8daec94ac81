"""The `compare` stage's analysis in one call: people against the network, on maps, percent correct and errors.

It puts together :mod:`ferjax.analysis.source` (what the data are),
:mod:`ferjax.analysis.study` (every method and baseline scored against the
human maps, percent correct on the same trials, error consistency),
:mod:`ferjax.analysis.observers` (people against the network in a binomial
mixed model), :mod:`ferjax.analysis.multiverse` with
:mod:`ferjax.analysis.differences` (how the answer depends on the analysis
choices, and in how many variants a method is clearly first), and writes the
answer in words (:func:`ferjax.analysis.verdict.answer`).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ferjax.analysis import differences, multiverse, observers, ranking, source, study, verdict
from ferjax.plumbing.errors import InputError


def ep_settings(attributions) -> tuple[list, list]:
    """The Extremal Perturbation areas and targets an attribution (its maps.npz) holds."""
    areas = [float(a) for a in np.atleast_1d(attributions["areas"])]
    return areas, [t for t in ("true", "contrast") if f"ep_{t}" in attributions]


def click_points(clicks, filenames):
    """Click positions per image as padded (N, K, 2) int (x, y) and (N, K) validity."""
    groups = {f: g[["x", "y"]].to_numpy() for f, g in clicks.groupby("filename")}
    k = max([len(v) for v in groups.values()] + [1])
    points, valid = np.zeros((len(filenames), k, 2), np.int32), np.zeros((len(filenames), k), bool)
    for i, f in enumerate(filenames):
        v = groups.get(f, np.zeros((0, 2)))
        points[i, :len(v)], valid[i, :len(v)] = np.floor(v).astype(np.int32), True
    return points, valid


def compare(hm, am, index, trials, clicks, people, stim, seen, grid, *, size, n_boot, seed, progress=None,
            where="index.csv", logs_provenance=None, au_regions=False, dataset=None, faithfulness=None,
            margin=0.05, network_effects=True) -> dict:
    """People against the network: every table, metric and the verdict of the `compare` stage.

    ``hm``: the human stage's maps.npz (``filenames``, ``image_all``, ``image_correct``);
    ``am``: the attribution's maps.npz and ``index`` its index.csv (``where`` names it in errors);
    ``trials``, ``clicks``: the click logs; ``people``: metrics/human.json;
    ``stim``, ``seen``: the network's 2AFC answers on the stimuli and on what people saw (or None);
    ``grid``: the checked analysis grid (:func:`ferjax.analysis.multiverse.check_grid`); ``size``:
    the side maps are compared at; ``progress(k)`` advances with the grid's steps;
    ``logs_provenance``, ``au_regions``, ``dataset``: what :func:`ferjax.analysis.source.describe`
    reads; ``faithfulness``: metrics/faithfulness.json (or None); ``margin``: the equivalence
    margin of percent correct; ``network_effects``: the mixed model's network-specific image effects.
    Returns ``result`` (:func:`ferjax.analysis.study.run`), ``accuracy``, ``headline`` (the metrics,
    with ``data``, ``agreement``, ``robustness``, ``people_vs_network`` and ``verdict``),
    ``trial_level``, ``variants`` (one row per analysis variant, with its call), ``robustness``,
    ``grid_seconds``, ``per_person`` (kappa per participant), ``verdict`` (with its pair tables),
    ``people_vs_network`` and the compared ``filenames``.
    """
    mapped = [str(f) for f in hm["filenames"]]
    stray = sorted(set(index["filename"]) - set(mapped))
    if stray:
        raise InputError(where, f"image '{stray[0]}'", "has no human map",
                         "run `ferjax attribute` and `ferjax human` on the same study")
    # the maps are compared on the stimuli the network explained (all, unless it lacks a class)
    keep = np.isin(mapped, index["filename"])
    filenames = [f for f, k in zip(mapped, keep) if k]
    hm = {**hm, "image_all": hm["image_all"][keep], "image_correct": hm["image_correct"][keep]}
    areas, targets = ep_settings(am)
    order = pd.Index(index["filename"]).get_indexer(filenames)
    maps = {k: v[order] for k, v in am.items() if v.ndim >= 3}
    points, valid = click_points(clicks, filenames)
    data = source.describe(logs_provenance=logs_provenance, au_regions=au_regions, human=people,
                           n_images=len(filenames), dataset=dataset)
    result = study.run(hm, maps, areas, trials, filenames, points, valid,
                       ceiling=people["reliability"]["spearman_brown"], size=size, n_boot=n_boot, seed=seed)
    accuracy = study.accuracy(trials, stim, seen)
    headline = study.headline(result["ranking"], accuracy, people)
    trial_level = study.trial_agreement(trials, stim, seen, n_boot=n_boot, seed=seed)
    vs_network = observers.people_vs_network(observers.observer_rows(trials, stim), margin=margin,
                                             network_effects=network_effects, n_boot=n_boot, seed=seed)
    method_maps = {(label, t): maps[f"{key}_{t}"] for t in targets
                   for key, label in (("cam", "CAM"), ("gradcam", "GradCAM"), ("ep", "EP")) if f"{key}_{t}" in maps}
    start = time.perf_counter()
    items = []
    variants = multiverse.run({k: hm[f"image_{k}"] for k in grid["human"]}, method_maps, areas, filenames,
                              trials, grid, seed=seed, progress=progress, items=items)
    robustness = multiverse.summarise(variants)
    names = [c for c in variants.columns if c not in multiverse.DIMENSIONS]
    methods = multiverse.present(variants)
    cols = [names.index(m) for m in methods]
    calls = differences.variant_calls([s[:, cols] for s in items], methods, n_boot=n_boot, seed=seed)
    robustness.update(differences.shares(calls, methods))
    variants = pd.concat([variants, calls.drop(columns="items").add_prefix("call_")], axis=1)
    grid_seconds = time.perf_counter() - start
    # per-person and per-pair values go to agreement.csv and the report, not to the metrics `dvc metrics diff` lists
    headline["agreement"] = {
        "error_consistency": {k: {f: v for f, v in ec.items() if f not in ("per_participant", "per_pair")}
                              for k, ec in trial_level["error_consistency"].items()},
        "concordance": trial_level["concordance"]}
    headline["robustness"] = robustness
    # the fit's time goes to the log only: the metrics stay byte-identical for the same inputs
    headline["people_vs_network"] = {**vs_network, "glmm": {k: v for k, v in vs_network["glmm"].items()
                                                            if k != "seconds"}}
    baselines = list(ranking.baselines(np.zeros((2, 4, 4)), seed=0))
    said = verdict.answer(result["scores"], result["labels"], baselines, observers=data["observers"],
                          ceiling=people["reliability"]["spearman_brown"], robustness=robustness, accuracy=vs_network,
                          trial_level=trial_level, faithfulness=faithfulness, n_boot=n_boot, seed=seed)
    headline["data"] = data
    headline["verdict"] = {k: v for k, v in said.items() if not isinstance(v, pd.DataFrame)}
    headline["verdict"]["methods_pairs"] = said["methods_pairs"].to_dict("records")
    headline = {"data": headline.pop("data"), **headline}   # what the data are comes first
    per_person = pd.DataFrame({"participant": trial_level["participants"],
                               **{f"kappa_{k}": trial_level["error_consistency"][k]["per_participant"]
                                  for k in ("network", "network_seen") if k in trial_level["error_consistency"]}})
    return {"result": result, "accuracy": accuracy, "headline": headline, "trial_level": trial_level,
            "variants": variants, "robustness": robustness, "grid_seconds": grid_seconds, "per_person": per_person,
            "filenames": filenames, "verdict": said, "people_vs_network": vs_network, "data": data}
