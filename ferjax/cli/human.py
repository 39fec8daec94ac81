"""The `human` stage: click logs -> human attention maps, people's percent correct, the maps' reliability."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ferjax.analysis import agreement, mapops
from ferjax.faces.images import mean_faces
from ferjax.faces.labels import NAMES
from ferjax.people import accuracy, clicklogs, clickmaps, exclusions
from ferjax.people.reliability import split_half
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp


def _grid_option(text):
    if text in (None, "", "None"):
        return None
    try:
        rows, cols = (int(v) for v in str(text).replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not ROWS,COLS") from None
    return rows, cols


@click.command("human")
@click.option("--logs", type=click.Path(path_type=Path), required=True,
              help="Click logs: reference layout (<yymmdd>_<participant>/choices.csv, clicks.csv) or tidy tables.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), default=None,
              help="Stimulus folder, for the mean face under each pair map in the figure.")
@click.option("--frame-size", "--size", "size", type=click.IntRange(8), default=256, show_default=True,
              help="Display frame side (params: human.frame_size).")
@click.option("--reveal", type=click.Choice(["disk", "tile"]), default="disk", show_default=True)
@click.option("--radius", type=click.FloatRange(0, min_open=True), default=15.0, show_default=True)
@click.option("--grid", default=None, help="ROWS,COLS of the tiles for --reveal tile.")
@click.option("--weighting", type=click.Choice(["none", "inverse_order", "exponential"]), default="none",
              show_default=True, help="Weight earlier clicks more: 1/order or exp(-rate (order-1)).")
@click.option("--rate", type=click.FloatRange(0), default=0.5, show_default=True)
@click.option("--sigma", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Gaussian smoothing of the maps, in pixels (0: none, as in the reference).")
@click.option("--splits", type=click.IntRange(1), default=20, show_default=True,
              help="Random participant halves for the split-half reliability.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--completed-only", is_flag=True, help="Exclude participants who did not finish (participants.csv).")
@click.option("--min-catch-accuracy", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Exclude participants answering fewer attention checks correctly than this share.")
@click.option("--min-rt", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Exclude trials answered faster than this many seconds after the face appeared (responses.csv).")
@click.option("--max-fast-fraction", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="Exclude participants with a larger share of trials faster than --min-rt.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None, help="Folder for plot CSVs and the figure.")
@_user_errors
def human_cmd(logs, stimuli_dir, size, reveal, radius, grid, weighting, rate, sigma, splits, seed, completed_only,
              min_catch_accuracy, min_rt, max_fast_fraction, out, metrics, plots):
    """Rasterize click logs into human attention maps and score people's 2AFC accuracy.

    Reads LOGS and writes OUT/maps.npz: per-image maps `image_all` and
    `image_correct` (sum over participants of each trial's reveal mask, all
    trials or correct ones only), per ordered (true, foil) pair maps `pair_all`
    and `pair_correct` (the reference's: each image map min-max normalised,
    then summed over the pair's images), `filenames` and `pairs`; the index
    tables OUT/images.csv and OUT/pairs.csv (percent correct with Wilson 95%
    intervals, clicks, time). METRICS gets overall and per-class percent
    correct, participant spread, the correlations across pairs, and the
    split-half reliability of the maps (Spearman-Brown corrected: the noise
    ceiling). PLOTS gets human_pairs.csv and human_pair_maps.png (each pair's
    map over its mean face).

    The exclusion rules (ferjax.people.exclusions) leave participants and
    trials out of all of this, never out of the data: OUT/exclusions.csv lists
    them, METRICS' `exclusions` counts them and says why.

    Params (section `human`): logs, frame_size, reveal, radius, grid, weighting, rate,
    sigma, splits, seed, completed_only, min_catch_accuracy, min_rt, max_fast_fraction.
    """
    trials, clicks = clicklogs.load_logs(logs, size=size)
    rules = dict(completed_only=completed_only, min_catch_accuracy=min_catch_accuracy, min_rt=min_rt,
                 max_fast_fraction=max_fast_fraction)
    excluded = exclusions.decide(trials, logs, **rules)
    left_out = exclusions.summary(trials, excluded, rules)
    trials, clicks = exclusions.apply(trials, clicks, excluded)
    if not len(trials):
        raise InputError(logs, None, "the exclusion rules leave no trial", "relax them in params.yaml's human section")
    options = dict(size=size, reveal=reveal, radius=radius, grid=_grid_option(grid), weighting=weighting,
                   rate=rate, sigma=sigma)
    maps, filenames = clickmaps.rasterize(trials, clicks, which="all", **options)
    correct_maps, correct_names = clickmaps.rasterize(trials, clicks, which="correct", **options)
    if list(correct_names) != list(filenames):
        correct_maps = np.stack([correct_maps[list(correct_names).index(f)] if f in correct_names
                                 else np.zeros((size, size), np.float32) for f in filenames])
    pair_all, pairs = mapops.pair_maps(maps, filenames, trials)
    pair_correct, _ = mapops.pair_maps(correct_maps, filenames, trials)
    scores = accuracy.score(trials)
    table, correlations = accuracy.pair_stats(trials)
    reliability = split_half(trials, clicks, n_splits=splits, seed=seed, **options)

    images = scores["image"].set_index("filename").loc[list(filenames)].reset_index()
    truth = trials.drop_duplicates("filename").set_index("filename")
    images.insert(1, "true", truth.loc[list(filenames), "true"].to_numpy())
    images.insert(2, "foil", truth.loc[list(filenames), "foil"].to_numpy())
    pair_table = scores["pair"].merge(table[["true", "foil", "clicks", "time"]], on=["true", "foil"])
    pair_table = pair_table.set_index(["true", "foil"]).loc[[tuple(p) for p in pairs]].reset_index()
    pair_table.insert(0, "pair", [f"{NAMES[t]} vs {NAMES[f]}" for t, f in pairs])
    overall = scores["overall"].iloc[0]
    per_p = scores["participant"]["accuracy"]
    summary = {
        "percent_correct": float(overall["accuracy"]), "ci95": [float(overall["lo"]), float(overall["hi"])],
        "trials": int(overall["n"]), "participants": int(len(per_p)),
        "participant_mean": float(per_p.mean()), "participant_sd": float(per_p.std(ddof=1)) if len(per_p) > 1 else 0.0,
        "per_class": {NAMES[int(r.true)]: float(r.accuracy) for r in scores["class"].itertuples()},
        "correlations": {k: float(v) for k, v in correlations.items()},
        "reliability": {"spearman_brown": float(reliability["mean"]), "sd": float(reliability["std"]),
                        "splits": splits},
        **agreement.image_difficulty(trials, seed=seed),
        "exclusions": left_out,
    }
    params = dict(options)
    params.update(logs=str(logs), splits=splits, seed=seed, exclusions=rules)
    with files.atomic_path(out, directory=True) as tmp:
        files.save_npz(tmp / "maps.npz", image_all=maps, image_correct=correct_maps, pair_all=pair_all,
                       pair_correct=pair_correct, filenames=np.array(filenames), pairs=np.asarray(pairs))
        files.write_csv(tmp / "images.csv", images)
        files.write_csv(tmp / "pairs.csv", pair_table)
        files.write_csv(tmp / "exclusions.csv", excluded)
        files.write_json(tmp / "provenance.json", stamp(params))
    if plots:
        plots = Path(plots)
        files.write_csv(plots / "human_pairs.csv", pair_table[["pair", "accuracy", "lo", "hi", "clicks", "time"]])
        if stimuli_dir is not None:
            from ferjax.report import figures

            # Tiles of at most 128 px keep the figure small enough to version in git.
            tile = min(size, 128)
            faces = mean_faces(stimuli_dir, filenames, pairs, trials, tile)
            tiles = [figures.overlay(face, figures.fit(m, tile)) for face, m in zip(faces, pair_all)]
            sheet = figures.grid(tiles, list(pair_table["pair"]), cols=7)
            with files.atomic_path(plots / "human_pair_maps.png") as tmp:
                files.save_png(tmp, sheet)
    if metrics:
        files.write_json(metrics, summary)
    click.echo(f"{summary['participants']} participants, {summary['trials']} trials: "
               f"{summary['percent_correct']:.3f} correct; map reliability (split-half, Spearman-Brown) "
               f"{summary['reliability']['spearman_brown']:.3f} ± {summary['reliability']['sd']:.3f}")
    if len(excluded):
        click.echo(f"excluded {left_out['participants']['excluded']} participant(s) and "
                   f"{left_out['trials']['excluded']} trial(s): see {Path(out) / 'exclusions.csv'}")
