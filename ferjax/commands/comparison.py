"""The `compare` stage: people against the network, maps and percent correct."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from ferjax import files, human
from ferjax.commands.people import mean_faces
from ferjax.errors import InputError
from ferjax.errors import cli_errors as _user_errors
from ferjax.labels import NAMES
from ferjax.provenance import stamp

POINTING_EP_AREAS = (0.025, 0.05, 0.1, 0.2)  # TorchRay's pointing-game benchmark (VOC 2007)


def _click_points(clicks, filenames):
    """Click positions per image as padded (N, K, 2) int (x, y) and (N, K) validity."""
    groups = {f: g[["x", "y"]].to_numpy() for f, g in clicks.groupby("filename")}
    k = max([len(v) for v in groups.values()] + [1])
    points, valid = np.zeros((len(filenames), k, 2), np.int32), np.zeros((len(filenames), k), bool)
    for i, f in enumerate(filenames):
        v = groups.get(f, np.zeros((0, 2)))
        points[i, :len(v)], valid[i, :len(v)] = np.floor(v).astype(np.int32), True
    return points, valid


def sanity_checks(model_dir, stimuli_dir, attr_dir, index, attributions, *, seed=0, tolerance=15.0,
                  ep_areas=POINTING_EP_AREAS, ep_images=16, draws=5, keep_maps=False) -> dict:
    """The attribution sanity checks of :mod:`ferjax.sanity` on the study: metrics/compare.json's `sanity`.

    Pointing game, with the protocol of TorchRay's pointing-game benchmark
    (the reference implementation of Extremal Perturbation): the true-class
    maps of the stimuli the network classifies correctly (8-way argmax;
    one_vs_one: the pair network's answer) and that have AU ground truth
    (stimuli/regions.npz; neutral faces have none), against the union of
    their expression's AU regions, at the model's input size. ``tolerance``
    is in pixels at 224 px (Zhang et al.'s 15) and scales with the map side
    (4.3 px at 64). The saved maps (attribution/maps.npz) are scored, and EP
    once more as that benchmark points with it: Extremal Perturbation on those
    stimuli at ``ep_areas`` (its 0.025, 0.05, 0.1, 0.2) with the attribution's
    other settings, the masks summed (areas the attribution already has are
    reused, the others run here). Each method reports the
    hit rate, TorchRay's class-averaged rate and the strict rate (tolerance 0);
    with ``keep_maps`` the pointing game's entry also holds the scored maps
    (``maps``: name -> (n, H, W)) and their stimulus ``rows``.
    Model randomisation: the network
    re-initialised with its own initialisers ``draws`` times (keys
    ``fold_in(key(seed), d)``), cascading from the head ("head") to every
    layer ("all"); CAM and GradCAM recomputed on every stimulus, Extremal
    Perturbation with the settings the attribution was made with
    (attribution/provenance.json) on ``ep_images`` stimuli spread evenly over
    the index (0: none).
    """
    import json

    import jax

    from ferjax import attribution, model, sanity
    from ferjax.commands import network
    from ferjax.commands.data import read_ground_truth

    params, features, classifier, spec = network.load_model(model_dir)
    prov_path = Path(attr_dir) / "provenance.json"
    try:
        ep = json.loads(prov_path.read_text())["params"]
    except (OSError, ValueError, KeyError) as err:
        raise InputError(prov_path, None, f"cannot read the attribution settings ({err})",
                         "re-run `ferjax attribute`") from None
    filenames, n = list(index["filename"]), len(index)
    true, foil = index["true"].to_numpy(), index["foil"].to_numpy()
    images = network._to_model(network._stimulus_images(stimuli_dir, filenames, spec["size"], spec["channels"]),
                               spec["size"], spec["channels"])
    ovo, batch = spec["mode"] == "one_vs_one", int(ep.get("batch", 35))
    groups = network.networks(spec, true, foil)

    def explain(fn, rows_subset=None, size=batch):
        """``params -> maps`` of ``fn`` on the stimuli (or ``rows_subset``), each by its network, ``size`` a call."""
        def run(p):
            out = None
            for k, rows, t, _ in groups:
                pick = np.ones(len(rows), bool) if rows_subset is None else np.isin(rows, rows_subset)
                pk = jax.tree.map(lambda a, k=k: a[k], p) if ovo else p
                for s in range(0, int(pick.sum()), size):
                    r, tk = rows[pick][s:s + size], t[pick][s:s + size]
                    m = np.asarray(fn(features, classifier, pk, images[r], tk))
                    out = np.zeros((n, *m.shape[1:]), np.float32) if out is None else out
                    out[r] = m
            return out if rows_subset is None else out[rows_subset]
        return run

    # Which stimuli the network classifies correctly (one_vs_one: its pair network's 2AFC answer).
    correct = np.zeros(n, bool)
    for k, rows, t, f in groups:
        pk = jax.tree.map(lambda a, k=k: a[k], params) if ovo else params
        z = np.concatenate([np.asarray(model.logits(features, classifier, pk, images[rows[s:s + batch]]))
                            for s in range(0, len(rows), batch)])
        correct[rows] = z[np.arange(len(rows)), t] > z[np.arange(len(rows)), f] if ovo else z.argmax(1) == t
    areas = [float(a) for a in np.atleast_1d(attributions["areas"])] if "ep_true" in attributions else []
    maps = {"CAM true": attributions["cam_true"], "GradCAM true": attributions["gradcam_true"]}
    maps.update({f"EP {a:g} true": attributions["ep_true"][:, i] for i, a in enumerate(areas)})

    settings = {k: ep[k] for k in ("variant", "max_iter", "step", "sigma", "scale_to", "jitter", "preset")}

    def ep_masks(areas):
        def fn(features, classifier, p, x, t):
            return attribution.extremal_perturbation(features, classifier, p, x, t, areas=tuple(areas),
                                                     **settings)["masks"]
        return fn

    regions_npz = Path(stimuli_dir) / "regions.npz"
    pointing = None
    if regions_npz.exists():
        intensities, au_regions = read_ground_truth(regions_npz, filenames)
        side = int(attributions["cam_true"].shape[-1])
        regions = sanity.expression_regions(au_regions, intensities, true, size=side)
        has = regions.any((1, 2))
        keep = correct & has
        rows, labels = np.flatnonzero(keep), true[keep]
        tolerance_px = float(tolerance) * side / 224.0
        pointing = {"images": int(keep.sum()), "without_regions": int((~has).sum()),
                    "misclassified": int((has & ~correct).sum()), "tolerance": float(tolerance),
                    "tolerance_px": tolerance_px, "ties": "all",
                    "region_share": float(regions[keep].mean()) if keep.any() else None, "methods": {}}
        scored = {name: m[keep] for name, m in maps.items()}
        if ep_areas and len(rows):
            # areas the attribute stage already ran (same settings, same network) are reused
            saved = {a: attributions["ep_true"][rows, i] for i, a in enumerate(areas) if a in ep_areas}
            missing = [a for a in ep_areas if a not in saved]
            total = sum(saved.values()) if saved else 0.0
            if missing:
                total = total + explain(ep_masks(missing), rows)(params).sum(1)
            scored[f"EP {'+'.join(f'{a:g}' for a in ep_areas)} true"] = total
        for name, m in scored.items():
            hits = sanity.pointing_game(m, regions[keep], tolerance=tolerance_px)
            strict = sanity.pointing_game(m, regions[keep])
            by_class = {NAMES[c]: float(hits[labels == c].mean()) for c in np.unique(labels)}
            pointing["methods"][name] = {
                "hit_rate": float(hits.mean()) if len(hits) else None, "hits": int(hits.sum()),
                "class_mean": float(np.mean(list(by_class.values()))) if by_class else None,
                "strict_hit_rate": float(strict.mean()) if len(strict) else None, "by_class": by_class}
        if keep_maps:
            pointing.update(maps=scored, rows=rows)

    init, levels = network.model_init(spec), {"head": [], "all": []}
    for d in range(draws):
        drawn = sanity.cascade(params, init, jax.random.fold_in(jax.random.key(seed), d),
                               [("head", ["head"]), ("all", None)])
        for level, p in drawn.items():
            levels[level].append(p)
    # the `batch` setting sizes EP's calls; one forward (and backward) pass per image can take more at once
    wide = max(batch, 128)
    methods = {"CAM true": explain(attribution.cam, size=wide), "GradCAM true": explain(attribution.gradcam, size=wide)}
    ep_rows = np.unique(np.linspace(0, n - 1, min(ep_images, n)).round().astype(int)) if ep_images else []
    if areas and len(ep_rows):
        methods[f"EP {','.join(f'{a:g}' for a in areas)} true"] = explain(ep_masks(areas), ep_rows)
    randomization = {"scheme": "cascading: the head re-initialised ('head'), then every layer ('all')",
                     "seed": seed, "draws": draws, "ep_images": len(ep_rows),
                     "methods": sanity.randomization_test(methods, params, levels)}
    return {"pointing_game": pointing, "randomization": randomization}


def sanity_text(checks) -> str:
    """The sanity checks' lines of the stage log."""
    lines = []
    pg = checks["pointing_game"]
    if pg is None:
        lines.append("pointing game: skipped (the stimuli have no AU ground truth, stimuli/regions.npz)")
    else:
        share = "n/a" if pg["region_share"] is None else f"{pg['region_share']:.1%}"
        lines.append(f"pointing game (peak of the true-class map within {pg['tolerance_px']:.1f} px of the "
                     f"expression's AU regions; {pg['images']} correctly classified stimuli with AU regions, which "
                     f"cover {share} of the image) [class mean; strict, 0 px]:")
        for name, v in pg["methods"].items():
            rate = v["hit_rate"]
            lines.append(f"  {name:26s} " + ("n/a" if rate is None else
                                             f"{rate:.3f} [{v['class_mean']:.3f}; {v['strict_hit_rate']:.3f}]")
                         + ("  (below 0.90)" if rate is not None and rate < 0.9 else ""))
    rnd = checks["randomization"]
    lines.append(f"model randomisation (Spearman with the trained network's maps, mean over images and "
                 f"{rnd['draws']} random draws [range over draws]; cascading head -> all):")
    for name, levels in rnd["methods"].items():
        parts = [f"{lvl} {v['spearman']:.3f} [{min(v['draws']):.2f}, {max(v['draws']):.2f}]"
                 + (f" ({v['constant']} constant maps left out)" if v["constant"] else "") for lvl, v in levels.items()]
        worst = max(v["spearman"] for v in levels.values())
        lines.append(f"  {name:18s} " + ", ".join(parts) + ("" if worst < 0.5 else "  (not below 0.5)"))
    return "\n".join(lines)


@click.command("compare")
@click.option("--human", "human_dir", type=click.Path(path_type=Path), required=True, help="Output of `ferjax human`.")
@click.option("--human-metrics", type=click.Path(path_type=Path), required=True,
              help="metrics/human.json (the noise ceiling and people's percent correct).")
@click.option("--attribution", "attr_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax attribute`.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="Output of `ferjax train`.")
@click.option("--logs", type=click.Path(path_type=Path), required=True, help="The click logs the human maps came from.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True)
@click.option("--map-size", "--size", "size", type=click.IntRange(8), default=64, show_default=True,
              help="Side at which maps are compared (model maps resized, human maps downsampled, bilinear; "
                   "params: compare.map_size).")
@click.option("--boot", type=click.IntRange(100), default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the bootstrap, the shuffled baseline and the randomised network.")
@click.option("--pointing-tolerance", type=click.FloatRange(0), default=15.0, show_default=True,
              help="Pointing game: a peak this many pixels from the AU regions still hits, in pixels at 224 px "
                   "(Zhang et al.'s 15), scaled to the map side: 4.3 px at 64. Strict rates (0) are reported too.")
@click.option("--pointing-ep-areas", default="0.025,0.05,0.1,0.2", show_default=True,
              help="Pointing game: also re-run Extremal Perturbation at these areas and point with the sum of its "
                   "masks, as TorchRay's pointing-game benchmark does (empty: score the saved EP maps only).")
@click.option("--randomize-ep-images", type=click.IntRange(0), default=16, show_default=True,
              help="Model randomisation test: stimuli Extremal Perturbation is re-run on (0: leave EP out).")
@click.option("--randomize-draws", type=click.IntRange(1), default=5, show_default=True,
              help="Model randomisation test: random re-initialisations averaged over.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (tables).")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="Folder for index.html.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None)
@_user_errors
def compare_cmd(human_dir, human_metrics, attr_dir, model_dir, logs, stimuli_dir, size, boot, seed,
                pointing_tolerance, pointing_ep_areas, randomize_ep_images, randomize_draws, out, report, metrics,
                plots):
    """Compare the network's explanations and accuracy with people's.

    Scores every method (CAM, GradCAM, EP at each area; true-class and
    contrast targets) and the baselines (centre Gaussian, leave-one-out face
    prior, shuffled human map) against the human maps, from all trials and
    from correct trials only, per image and per ordered pair (the reference
    study's 56 maps): Dice and IoU at several top fractions, Spearman, CC, KL,
    SIM, NSS and AUC-Judd (clicks as fixations). Writes OUT/ranking.csv (mean,
    bootstrap 95% interval, rank, Holm-corrected paired tests against the
    best method, Harmonization alignment = Spearman / noise ceiling),
    OUT/by_class.csv and OUT/accuracy_pairs.csv (people vs network per pair,
    McNemar on shared trials). METRICS gets the headline numbers; REPORT gets
    a self-contained index.html; PLOTS gets compare_methods.csv and
    accuracy_pairs.csv.

    Also runs two sanity checks of the explanations (:mod:`ferjax.sanity`),
    reported under `sanity` in METRICS and in the log: the pointing game
    (Zhang et al. 2016, as TorchRay's benchmark plays it: is the peak of each
    method's true-class map within the tolerance of the expression's
    action-unit regions, on the correctly classified stimuli with AU ground
    truth) and the model-randomisation test (Adebayo et al. 2018: Spearman
    correlation of the maps of the trained network with those of the network
    re-initialised from the head down).

    Params (section `compare`): map_size, boot, seed, pointing_tolerance,
    pointing_ep_areas, randomize_ep_images, randomize_draws.
    """
    import json

    from ferjax import study as compare_study

    try:
        ep_areas = tuple(float(a) for a in str(pointing_ep_areas).split(",") if a.strip())
    except ValueError:
        raise InputError("--pointing-ep-areas", None, f"not a list of numbers: {pointing_ep_areas!r}",
                         "give areas in (0, 1) separated by commas, e.g. 0.025,0.05,0.1,0.2") from None
    if any(not 0 < a < 1 for a in ep_areas):
        raise InputError("--pointing-ep-areas", None, f"areas must lie in (0, 1), got {pointing_ep_areas!r}",
                         "give areas in (0, 1) separated by commas, e.g. 0.025,0.05,0.1,0.2")

    trials, clicks = human.load_logs(logs)
    with np.load(Path(human_dir) / "maps.npz") as z:
        hm = {k: z[k] for k in z.files}
    with np.load(Path(attr_dir) / "maps.npz") as z:
        am = {k: z[k] for k in z.files}
    index = pd.read_csv(Path(attr_dir) / "index.csv")
    people = json.loads(Path(human_metrics).read_text())
    stim = pd.read_csv(Path(model_dir) / "stimuli_2afc.csv")
    seen_csv = Path(model_dir) / "seen_2afc.csv"
    seen = pd.read_csv(seen_csv) if seen_csv.exists() else None
    filenames = [str(f) for f in hm["filenames"]]
    if sorted(filenames) != sorted(index["filename"]):
        raise InputError(Path(attr_dir) / "index.csv", "column 'filename'",
                         "the explained stimuli differ from the images in the human maps",
                         "run `ferjax attribute` and `ferjax human` on the same study")
    order = pd.Index(index["filename"]).get_indexer(filenames)
    points, valid = _click_points(clicks, filenames)
    result = compare_study.run(hm, {k: v[order] for k, v in am.items() if v.ndim >= 3}, am["areas"], trials,
                               filenames, points, valid, ceiling=people["reliability"]["spearman_brown"],
                               size=size, n_boot=boot, seed=seed)
    accuracy = compare_study.accuracy(trials, stim, seen)
    headline = compare_study.headline(result["ranking"], accuracy, people)
    headline["sanity"] = sanity_checks(model_dir, stimuli_dir, attr_dir, index, am, seed=seed,
                                       tolerance=pointing_tolerance, ep_areas=ep_areas,
                                       ep_images=randomize_ep_images,
                                       draws=randomize_draws)
    with files.atomic_path(out, directory=True) as tmp:
        files.write_csv(tmp / "ranking.csv", result["ranking"])
        files.write_csv(tmp / "by_class.csv", result["by_class"])
        files.write_csv(tmp / "accuracy_pairs.csv", accuracy["pairs"])
        files.write_json(tmp / "provenance.json", stamp({"size": size, "boot": boot, "seed": seed,
                                                          "pointing_tolerance": pointing_tolerance,
                                                          "pointing_ep_areas": list(ep_areas),
                                                          "randomize_ep_images": randomize_ep_images,
                                                          "randomize_draws": randomize_draws}))
    if plots:
        files.write_csv(Path(plots) / "compare_methods.csv", compare_study.methods_plot(result["ranking"]))
        files.write_csv(Path(plots) / "accuracy_pairs.csv", accuracy["pairs"][["pair", "people", "model", "model_seen"]])
    if report:
        people, _, pairs = result["pairs"]["all"]
        faces = mean_faces(stimuli_dir, filenames, pairs, trials, people.shape[-1])
        html_text = compare_study.build_report(result, accuracy, headline, faces,
                                               provenance=json.loads((Path(model_dir) / "provenance.json").read_text()))
        with files.atomic_path(Path(report) / "index.html") as tmp:
            tmp.write_text(html_text)
    if metrics:
        files.write_json(metrics, headline)
    click.echo(compare_study.log_text(result["ranking"], headline))
    click.echo(sanity_text(headline["sanity"]))
