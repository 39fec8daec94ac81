"""The `compare` stage: people against the network, maps and percent correct."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

from ferjax.analysis import comparison, multiverse, study
from ferjax.faces import images
from ferjax.people import clicklogs, exclusions
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp
from ferjax.report import document


def _read_json(path, hint):
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(path, None, f"cannot read ({err})", hint) from None


def _read_grid(text):
    import json

    try:
        grid = json.loads(text) if text else {}
    except ValueError as err:
        raise InputError("--grid", None, f"not a JSON object ({err})",
                         'e.g. {"sigma": [0, 8], "map_size": [64]}') from None
    if not isinstance(grid, dict):
        raise InputError("--grid", None, "must be a JSON object of analysis choices", 'e.g. {"sigma": [0, 8]}')
    return grid

@click.command("compare")
@click.option("--human", "human_dir", type=click.Path(path_type=Path), required=True, help="Output of `ferjax human`.")
@click.option("--human-metrics", type=click.Path(path_type=Path), required=True,
              help="metrics/human.json (the noise ceiling and people's percent correct).")
@click.option("--attribution", "attr_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax attribute`.")
@click.option("--network", "--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax network` (the network's answers on the stimuli and on what people saw).")
@click.option("--logs", type=click.Path(path_type=Path), required=True, help="The click logs the human maps came from.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True)
@click.option("--sanity", "sanity_json", type=click.Path(path_type=Path), default=None,
              help="metrics/sanity.json from `ferjax sanity`, shown in the report.")
@click.option("--map-size", "--size", "size", type=click.IntRange(8), default=64, show_default=True,
              help="Side at which maps are compared in the main analysis (model maps resized, human maps "
                   "downsampled, bilinear; params: compare.map_size).")
@click.option("--boot", type=click.IntRange(100), default=2000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the bootstraps and the shuffled baseline.")
@click.option("--grid", default="{}", show_default=True,
              help="JSON object of the analysis choices the robustness analysis varies, each a list: metric "
                   "(dice@<fraction>, spearman), human (all, correct), map_size, sigma (extra smoothing of the human "
                   "maps, display pixels), ep_area (null: every area the attribution has), level (image, pair), "
                   "target (true, contrast). Missing keys take the defaults of ferjax.analysis.multiverse.DEFAULT_GRID.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (tables).")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="Folder for index.html.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None)
@_user_errors
def compare_cmd(human_dir, human_metrics, attr_dir, model_dir, logs, stimuli_dir, sanity_json, size, boot, seed,
                grid, out, report, metrics, plots):
    """Compare the network's explanations and accuracy with people's, and say how robust the answer is.

    \b
    Maps: scores every method (CAM, GradCAM, EP at each area; true-class and
      contrast targets) and the baselines (centre Gaussian, leave-one-out face
      prior, shuffled human map) against the human maps, from all trials and
      from correct trials only, per image and per ordered pair (the reference
      study's 56 maps): Dice and IoU at several top fractions, Spearman, CC,
      KL, SIM, NSS and AUC-Judd (clicks as fixations), with bootstrap 95%
      intervals and Holm-corrected paired tests against the best.
    Robustness: reruns the comparison over the grid of analysis choices
      (--grid) and reports how often each method ranks first, among the
      explanation methods and among all candidates, and which choice most
      often changes the winner (ferjax.analysis.multiverse).
    Percent correct: people and the network per ordered pair, McNemar tests
      on shared trials, the 2AFC confusion matrices.
    Trial level: error consistency (Cohen's kappa of the correct/wrong
      pattern, Geirhos et al. 2020) of the network with each person, on the
      full face and on what that person uncovered, and of every pair of
      people (the ceiling), with bootstrap intervals over stimuli; and the
      performance concordance (per-image accuracy aggregated over people).

    Writes OUT/ranking.csv, by_class.csv, accuracy_pairs.csv, variants.csv
    (one row per analysis variant) and agreement.csv (kappa per participant).
    METRICS gets the headline numbers with a plain-language `verdict`,
    `robustness` and `agreement`; REPORT gets a self-contained index.html that
    answers first; PLOTS gets compare_methods.csv and accuracy_pairs.csv.

    Params (section `compare`): map_size, boot, seed, grid.
    """
    trials, clicks = clicklogs.load_logs(logs)
    # the human stage's exclusions: the maps, scores and report all leave out the same people and trials
    trials, clicks = exclusions.apply(trials, clicks, exclusions.read(Path(human_dir) / "exclusions.csv"))
    with np.load(Path(human_dir) / "maps.npz") as z:
        hm = {k: z[k] for k in z.files}
    with np.load(Path(attr_dir) / "maps.npz") as z:
        am = {k: z[k] for k in z.files}
    index = pd.read_csv(Path(attr_dir) / "index.csv")
    people = _read_json(human_metrics, "run `ferjax human` first")
    sanity = _read_json(sanity_json, "run `ferjax sanity` first") if sanity_json else None
    stim = pd.read_csv(Path(model_dir) / "stimuli_2afc.csv")
    seen_csv = Path(model_dir) / "seen_2afc.csv"
    seen = pd.read_csv(seen_csv) if seen_csv.exists() else None
    grid = multiverse.check_grid(_read_grid(grid), *comparison.ep_settings(am))
    with tqdm(total=multiverse.steps(grid), desc="analysis variants", disable=None, leave=False) as bar:
        done = comparison.compare(hm, am, index, trials, clicks, people, stim, seen, grid, size=size, n_boot=boot,
                                  seed=seed, progress=bar.update, where=Path(attr_dir) / "index.csv")
    result, accuracy, headline, trial_level = done["result"], done["accuracy"], done["headline"], done["trial_level"]
    variants, robustness, filenames = done["variants"], done["robustness"], done["filenames"]
    per_person, grid_seconds = done["per_person"], done["grid_seconds"]
    with files.atomic_path(out, directory=True) as tmp:
        files.write_csv(tmp / "ranking.csv", result["ranking"])
        files.write_csv(tmp / "by_class.csv", result["by_class"])
        files.write_csv(tmp / "accuracy_pairs.csv", accuracy["pairs"])
        files.write_csv(tmp / "variants.csv", variants)
        files.write_csv(tmp / "agreement.csv", per_person)
        files.write_json(tmp / "provenance.json", stamp({"size": size, "boot": boot, "seed": seed, "grid": grid}))
    if plots:
        files.write_csv(Path(plots) / "compare_methods.csv", study.methods_plot(result["ranking"]))
        files.write_csv(Path(plots) / "accuracy_pairs.csv", accuracy["pairs"][["pair", "people", "model", "model_seen"]])
    if report:
        pair_people, _, pairs = result["pairs"]["all"]
        faces = images.mean_faces(stimuli_dir, filenames, pairs, trials, pair_people.shape[-1])
        provenance = {"compare": stamp({"size": size, "boot": boot, "seed": seed, "grid": grid}),
                      "model": _read_json(Path(model_dir) / "provenance.json", "re-run `ferjax network`"),
                      "attribution": _read_json(Path(attr_dir) / "provenance.json", "re-run `ferjax attribute`")}
        html_text = document.build(result, accuracy, headline, trial_level, variants, faces, sanity=sanity,
                                       provenance=provenance, exclusions=people.get("exclusions"))
        with files.atomic_path(Path(report) / "index.html") as tmp:
            tmp.write_text(html_text)
    if metrics:
        files.write_json(metrics, headline)
    click.echo(study.log_text(result["ranking"], headline))
    rob = robustness
    click.echo(f"robustness: {rob['variants']} analysis variants in {grid_seconds:.0f} s; first among the methods: "
               + ", ".join(f"{k} {v:.0%}" for k, v in rob["first_among_methods"].items())
               + f"; the choice that most often changes the winner: {rob['most_influential']}")
    click.echo(f"verdict: {headline['verdict']['text']}")
