"""The `faithfulness` stage: are the maps faithful to the network? Deletion, insertion and ROAD."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

from ferjax.analysis import ranking, stats
from ferjax.explain import faithfulness
from ferjax.faces import images
from ferjax.networks import answers, saved
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp


def candidate_maps(am, hm, filenames, size, *, seed=0) -> dict:
    """The maps to judge, at the network's input size: CAM, GradCAM and EP at each area for the true class,
    the human-map baselines of the fit to people (centre, face prior, shuffled) and people's own maps."""
    out = {}
    for key, label in (("cam_true", "CAM true"), ("gradcam_true", "GradCAM true")):
        if key in am:
            out[label] = am[key]
    for a, area in enumerate(np.atleast_1d(am.get("areas", []))):
        if "ep_true" in am:
            out[f"EP {float(area):g} true"] = am["ep_true"][:, a]
    if hm is not None:
        order = pd.Index([str(f) for f in hm["filenames"]]).get_indexer(filenames)
        people = images.resize(hm["image_all"][order], size)
        out.update({**ranking.baselines(people, seed=seed), "people": people})
    return out


def summary(scores: pd.DataFrame, *, n_boot: int, seed: int) -> dict:
    """Per candidate and metric: mean with a bootstrap 95% interval over images."""
    out = {}
    for (method, metric), g in scores.groupby(["method", "metric"], sort=False):
        mean, lo, hi = stats.bootstrap_ci(g["value"].to_numpy()[:, None], n_boot=n_boot, seed=seed)
        out.setdefault(method, {})[metric] = {"mean": float(mean[0]), "ci95": [float(lo[0]), float(hi[0])]}
    return out


@click.command("faithfulness")
@click.option("--network", "model_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax network`.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli`.")
@click.option("--attribution", "attr_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax attribute`.")
@click.option("--human", "human_dir", type=click.Path(path_type=Path), default=None,
              help="Output of `ferjax human`: its maps give the baselines and people's maps as candidates.")
@click.option("--steps", type=click.IntRange(1), default=16, show_default=True,
              help="Deletion and insertion: the curve's steps (each changes ceil(pixels / STEPS) pixels).")
@click.option("--baseline", type=click.Choice(["blur", "zeros", "mean"]), default="blur", show_default=True,
              help="What deletion puts in place of a pixel (insertion always starts from the blurred image).")
@click.option("--score", type=click.Choice(["prob", "logit", "logprob"]), default="prob", show_default=True,
              help="Deletion and insertion: the true class's softmax probability (RISE), logit or log-probability.")
@click.option("--road-score", type=click.Choice(["prob", "logit", "logprob"]), default="logit", show_default=True,
              help="ROAD: the score whose change is measured (pytorch-grad-cam's ClassifierOutputTarget: logit).")
@click.option("--percentiles", default="10,30,50,70,90", show_default=True,
              help="ROAD: the percentiles p; MoRF(p) removes the pixels at or above the p-th percentile of the map.")
@click.option("--noise", type=click.FloatRange(0), default=0.01, show_default=True,
              help="ROAD: SD of the noise added to imputed pixels, in the units of the images ([0, 1]).")
@click.option("--per-class", type=click.IntRange(0), default=0, show_default=True,
              help="Judge the first N stimuli of each class only (0: all); the cost grows with the stimuli.")
@click.option("--boot", type=click.IntRange(100), default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True, help="ROAD's noise, the shuffled baseline, bootstraps.")
@click.option("--batch", type=click.IntRange(1), default=32, show_default=True, help="Stimuli per compiled call.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (per-image scores).")
@click.option("--metrics", type=click.Path(path_type=Path), required=True)
@click.option("--plots", type=click.Path(path_type=Path), default=None, help="Folder for the mean curves' CSV.")
@_user_errors
def faithfulness_cmd(model_dir, stimuli_dir, attr_dir, human_dir, steps, baseline, score, road_score, percentiles,
                     noise, per_class, boot, seed, batch, out, metrics, plots):
    """Judge each map by what the network does when its pixels go: deletion, insertion and ROAD.

    \b
    For CAM, GradCAM and EP (each area; true-class maps), the baselines of the
    comparison with people (centre, face prior, shuffled human map) and people's
    own maps, on the stimuli the network answers with the classifier it was
    explained by (ferjax.explain.faithfulness, ferjax.explain.road):
    deletion    the most salient pixels first replaced by --baseline; area under
                the true class's --score, lower is better (Petsiuk et al. 2018);
    insertion   the image's pixels put back into its blurred copy, most salient
                first; area, higher is better;
    ROAD        at each --percentiles p, the pixels at or above the map's p-th
                percentile (MoRF) or the least relevant (LeRF) removed and filled
                by noisy linear imputation (Rong et al. 2022, as pytorch-grad-cam);
                the change of the --road-score, averaged over p; combined =
                (LeRF - MoRF) / 2, higher is better.

    Writes OUT/scores.csv (per image) and METRICS (per candidate: each measure's
    mean and bootstrap 95% interval); PLOTS gets faithfulness_curves.csv. The
    `compare` stage sets these beside the fit to people's maps.

    Params (section `faithfulness`): steps, baseline, score, road_score,
    percentiles, noise, per_class, boot, seed, batch.
    """
    try:
        pct = tuple(float(p) for p in str(percentiles).split(",") if p.strip())
    except ValueError:
        pct = ()
    if not pct or any(not 0 < p < 100 for p in pct):
        raise InputError("--percentiles", None, f"not percentiles in (0, 100): {percentiles!r}", "e.g. 10,30,50,70,90")
    try:
        index = pd.read_csv(Path(attr_dir) / "index.csv")
        with np.load(Path(attr_dir) / "maps.npz") as z:
            am = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise InputError(attr_dir, None, f"cannot read the attribution ({err})", "run `ferjax attribute` first") \
            from None
    network = saved.load_network(model_dir)
    spec = network[3]
    if spec.get("mode") == "one_vs_one":
        raise InputError(model_dir, None, "is a one_vs_one network", "faithfulness judges a multiclass network")
    if per_class:
        rows = np.concatenate([g.index[:per_class] for _, g in index.groupby("true", sort=True)])
        index, am = index.loc[rows].reset_index(drop=True), {k: (v[rows] if np.ndim(v) >= 3 else v)
                                                               for k, v in am.items()}
    filenames = list(index["filename"])
    x = images.to_model_input(images.read_stimuli(stimuli_dir, filenames, spec["channels"]), spec["size"],
                              spec["channels"])
    targets = answers.label_map(spec)[index["true"].to_numpy()]
    hm = None
    if human_dir is not None:
        with np.load(Path(human_dir) / "maps.npz") as z:
            hm = {k: z[k] for k in ("filenames", "image_all")}
    maps = candidate_maps(am, hm, filenames, spec["size"], seed=seed)
    settings = {"steps": steps, "baseline": baseline, "score": score, "road_score": road_score,
                "percentiles": list(pct), "noise": noise, "per_class": per_class, "boot": boot, "seed": seed,
                "batch": batch, "target": "true class"}
    with tqdm(total=len(maps) * len(x), desc="faithfulness", disable=None, leave=False) as bar:
        scores, curves = faithfulness.evaluate(network, x, maps, targets, steps=steps, baseline=baseline, score=score,
                                               road_score=road_score, percentiles=pct, noise=noise, seed=seed,
                                               batch=batch, progress=bar.update)
    result = {"images": len(x), "settings": settings, "methods": summary(scores, n_boot=boot, seed=seed)}
    with files.atomic_path(out, directory=True) as tmp:
        files.write_csv(tmp / "scores.csv", scores.assign(filename=[filenames[i] for i in scores["item"]]))
        files.write_json(tmp / "provenance.json", stamp(settings))
    files.write_json(metrics, result)
    if plots:
        files.write_csv(Path(plots) / "faithfulness_curves.csv", pd.DataFrame(
            [{"method": m, "x": xv, "deletion": d, "insertion": i} for m, c in curves.items()
             for xv, d, i in zip(c["x"], c["deletion"], c["insertion"])]))
    click.echo(f"faithfulness of {len(maps)} candidates on {len(x)} stimuli (deletion and insertion: lower and "
               "higher is better; ROAD combined: higher is better):")
    for m, v in result["methods"].items():
        click.echo(f"  {m:18s} deletion {v['deletion_auc']['mean']:.3f}  insertion {v['insertion_auc']['mean']:.3f}"
                   f"  ROAD MoRF {v['road_morf']['mean']:+.3f} LeRF {v['road_lerf']['mean']:+.3f}"
                   f" combined {v['road_combined']['mean']:+.3f}")
