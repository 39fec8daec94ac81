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
from ferjax.provenance import stamp


def _click_points(clicks, filenames):
    """Click positions per image as padded (N, K, 2) int (x, y) and (N, K) validity."""
    groups = {f: g[["x", "y"]].to_numpy() for f, g in clicks.groupby("filename")}
    k = max([len(v) for v in groups.values()] + [1])
    points, valid = np.zeros((len(filenames), k, 2), np.int32), np.zeros((len(filenames), k), bool)
    for i, f in enumerate(filenames):
        v = groups.get(f, np.zeros((0, 2)))
        points[i, :len(v)], valid[i, :len(v)] = np.floor(v).astype(np.int32), True
    return points, valid


@click.command("compare")
@click.option("--human", "human_dir", type=click.Path(path_type=Path), required=True, help="Output of `ferjax human`.")
@click.option("--human-metrics", type=click.Path(path_type=Path), required=True,
              help="metrics/human.json (the noise ceiling and people's percent correct).")
@click.option("--attribution", "attr_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax attribute`.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="Output of `ferjax train`.")
@click.option("--logs", type=click.Path(path_type=Path), required=True, help="The click logs the human maps came from.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True)
@click.option("--size", type=click.IntRange(8), default=128, show_default=True,
              help="Side at which maps are compared (model maps upsampled, human maps downsampled, bilinear).")
@click.option("--boot", type=click.IntRange(100), default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (tables).")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="Folder for index.html.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None)
@_user_errors
def compare_cmd(human_dir, human_metrics, attr_dir, model_dir, logs, stimuli_dir, size, boot, seed, out, report,
                metrics, plots):
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

    Params (section `compare`): size, boot, seed.
    """
    import json

    from ferjax import study as compare_study

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
    with files.atomic_path(out, directory=True) as tmp:
        files.write_csv(tmp / "ranking.csv", result["ranking"])
        files.write_csv(tmp / "by_class.csv", result["by_class"])
        files.write_csv(tmp / "accuracy_pairs.csv", accuracy["pairs"])
        files.write_json(tmp / "provenance.json", stamp({"size": size, "boot": boot, "seed": seed}))
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
