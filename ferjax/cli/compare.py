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
@click.option("--faithfulness", "faithfulness_json", type=click.Path(path_type=Path), default=None,
              help="metrics/faithfulness.json from `ferjax faithfulness`, set beside the fit to people's maps.")
@click.option("--dataset", default=None,
              help="The face dataset's name, for a study of photographs (the stage passes params prepare.format "
                   "and prepare.root).")
@click.option("--margin", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True,
              help="Equivalence margin of percent correct, network vs people, as a fraction (0.05: 5 points).")
@click.option("--network-effects/--no-network-effects", default=True, show_default=True,
              help="The mixed model gives the network its own image effects (it may find other faces hard).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (tables).")
@click.option("--report", type=click.Path(path_type=Path), default=None, help="Folder for index.html.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None)
@_user_errors
def compare_cmd(human_dir, human_metrics, attr_dir, model_dir, logs, stimuli_dir, sanity_json, size, boot, seed,
                grid, faithfulness_json, dataset, margin, network_effects, out, report, metrics, plots):
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
    Signal or noise: every pair of methods (and baselines) with a simultaneous
      95% interval of its paired difference (max-T bootstrap-t); each method's
      setting (EP's area and target, CAM's target) chosen on the other half of
      the images; per analysis variant, whether the top method is clearly first
      or tied (ferjax.analysis.differences, ferjax.analysis.verdict).
    What the data are: simulated or recorded participants, rendered or dataset
      faces, who was excluded (ferjax.analysis.source), first in the report and
      in METRICS' `data`.
    Percent correct: people and the network per ordered pair, McNemar tests
      on shared trials, the 2AFC confusion matrices; and the marginal
      difference from a binomial mixed model with participants and images
      crossed, with TOST against --margin (ferjax.analysis.observers).
    Trial level: error consistency (Cohen's kappa of the correct/wrong
      pattern, Geirhos et al. 2020) of the network with each person, on the
      full face and on what that person uncovered, and of every pair of
      people (the ceiling), with bootstrap intervals over stimuli; and the
      performance concordance (per-image accuracy aggregated over people).

    Writes OUT/ranking.csv, by_class.csv, accuracy_pairs.csv, variants.csv
    (one row per analysis variant, with its call), agreement.csv (kappa per
    participant), pairwise.csv (every setting and baseline, primary metric)
    and methods_pairs.csv (the cross-fitted methods).
    METRICS gets the headline numbers with a plain-language `verdict`,
    `robustness` and `agreement`; REPORT gets a self-contained index.html that
    answers first; PLOTS gets compare_methods.csv and accuracy_pairs.csv.

    Params (section `compare`): map_size, boot, seed, grid, margin, network_effects.
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
    faithfulness = _read_json(faithfulness_json, "run `ferjax faithfulness` first") if faithfulness_json else None
    logs_prov = Path(logs) / "provenance.json"
    logs_provenance = _read_json(logs_prov, "") if Path(logs).is_dir() and logs_prov.exists() else None
    grid = multiverse.check_grid(_read_grid(grid), *comparison.ep_settings(am))
    with tqdm(total=multiverse.steps(grid), desc="analysis variants", disable=None, leave=False) as bar:
        done = comparison.compare(hm, am, index, trials, clicks, people, stim, seen, grid, size=size, n_boot=boot,
                                  seed=seed, progress=bar.update, where=Path(attr_dir) / "index.csv",
                                  logs_provenance=logs_provenance,
                                  au_regions=(Path(stimuli_dir) / "regions.npz").exists(), dataset=dataset,
                                  faithfulness=faithfulness, margin=margin, network_effects=network_effects)
    result, accuracy, headline, trial_level = done["result"], done["accuracy"], done["headline"], done["trial_level"]
    variants, robustness, filenames = done["variants"], done["robustness"], done["filenames"]
    per_person, grid_seconds = done["per_person"], done["grid_seconds"]
    settings = {"size": size, "boot": boot, "seed": seed, "grid": grid, "margin": margin,
                "network_effects": network_effects, "dataset": dataset}
    with files.atomic_path(out, directory=True) as tmp:
        files.write_csv(tmp / "ranking.csv", result["ranking"])
        files.write_csv(tmp / "by_class.csv", result["by_class"])
        files.write_csv(tmp / "accuracy_pairs.csv", accuracy["pairs"])
        files.write_csv(tmp / "variants.csv", variants)
        files.write_csv(tmp / "agreement.csv", per_person)
        files.write_csv(tmp / "pairwise.csv", done["verdict"]["settings_pairs"])
        files.write_csv(tmp / "methods_pairs.csv", done["verdict"]["methods_pairs"])
        files.write_json(tmp / "provenance.json", stamp(settings))
    if plots:
        files.write_csv(Path(plots) / "compare_methods.csv", study.methods_plot(result["ranking"]))
        files.write_csv(Path(plots) / "accuracy_pairs.csv", accuracy["pairs"][["pair", "people", "model", "model_seen"]])
    if report:
        pair_people, _, pairs = result["pairs"]["all"]
        faces = images.mean_faces(stimuli_dir, filenames, pairs, trials, pair_people.shape[-1])
        provenance = {"compare": stamp(settings),
                      "model": _read_json(Path(model_dir) / "provenance.json", "re-run `ferjax network`"),
                      "attribution": _read_json(Path(attr_dir) / "provenance.json", "re-run `ferjax attribute`")}
        html_text = document.build(result, accuracy, headline, trial_level, variants, faces, sanity=sanity,
                                   provenance=provenance, exclusions=people.get("exclusions"), verdict=done["verdict"],
                                   faithfulness=faithfulness)
        with files.atomic_path(Path(report) / "index.html") as tmp:
            tmp.write_text(html_text)
    if metrics:
        files.write_json(metrics, headline)
    click.echo(study.log_text(result["ranking"], headline))
    rob = robustness
    click.echo(f"robustness: {rob['variants']} analysis variants in {grid_seconds:.0f} s; clearly first among the "
               "methods: " + ", ".join(f"{k} {v:.0%}" for k, v in rob["clearly_first"].items())
               + f"; a tie at the top: {rob['tie_at_top']:.0%}; first by mean: "
               + ", ".join(f"{k} {v:.0%}" for k, v in rob["first_among_methods"].items())
               + f"; the choice that most often changes the winner: {rob['most_influential']}")
    g = done["people_vs_network"]["glmm"]
    click.echo(f"people vs network (mixed model, {g['seconds']:.0f} s): {100 * g['delta']:+.1f} points, 90% interval "
               f"{100 * g['ci90'][0]:+.1f} to {100 * g['ci90'][1]:+.1f}")
    click.echo(f"data: {headline['data']['text']}")
    click.echo(f"verdict: {headline['verdict']['text']}")
