"""The ``ferjax`` command line: one subcommand per pipeline stage.

Each subcommand reads explicit input paths, calls the library, and writes its
outputs atomically (a failed run leaves no partial output). DVC runs them
through ``stages/*.py``, which fill the options from ``params.yaml``; you can
run them by hand with your own paths. Bad input prints one line naming the
file and the row or field, and exits with status 2.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

from ferjax import data, files, human, participants, render
from ferjax.datasets import FORMATS, load_dataset
from ferjax.errors import InputError
from ferjax.labels import NAMES
from ferjax.provenance import stamp


def _user_errors(fn):
    """Turn bad input into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as err:
            click.echo(f"error: {err.line()}", err=True)
            sys.exit(2)

    return wrapper


def _bar(total, desc):
    return tqdm(total=total, desc=desc, unit="img", disable=None, leave=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ferjax")
def main():
    """Compare how people and deep networks see facial expressions.

    ferjax reproduces Park & Wallraven (2021): people uncover a blurred face by
    clicking and choose between two labels; a network is explained with CAM,
    GradCAM and Extremal Perturbation; the maps and percent correct are compared.

    \b
    Pipeline (dvc.yaml runs these in order; `dvc repro` runs them all):
      synth     render the embedded synthetic study's face pool (not a stage: its
                output is the raw data that data.dvc tracks)
      prepare   read a face dataset (reference layout, AffectNet, FER2013, RAF-DB, folders)
      split     assign train / val / test / stimulus roles
      stimuli   write the stimulus set and its 2AFC trial list
      simulate  run simulated participants and write reference-format click logs

    Run `ferjax COMMAND --help` for what each reads, writes and which params apply.
    """


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("data"), show_default=True,
              help="Folder to write: OUT/faces/<label>/<name>.png and OUT/faces_au.npz.")
@click.option("--per-class", type=click.IntRange(1), default=340, show_default=True)
@click.option("--size", type=click.IntRange(16), default=64, show_default=True, help="Image side in pixels.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="1 = grayscale, 3 = RGB.")
@click.option("--noise", type=click.FloatRange(0), default=0.02, show_default=True,
              help="Sensor noise SD, in units of full intensity.")
@click.option("--seed", type=int, default=0, show_default=True)
@_user_errors
def synth(out, per_class, size, channels, noise, seed):
    """Render the synthetic face pool that stands in for AffectNet.

    Writes PER_CLASS faces of each of the 8 classes in the reference layout
    (OUT/faces/<label>/<label>_<k>.png) and the ground truth of where the
    evidence is: OUT/faces_au.npz holds each image's action-unit intensities
    and the region mask of every action unit.

    The repository ships this output as data/ (tracked by data.dvc), made with
    the defaults here; regenerate it with `ferjax synth && dvc add data`.
    """
    bar = _bar(per_class * len(NAMES), "rendering")
    images, labels, names, intensities, regions = render.render_study(
        per_class, size=size, channels=int(channels), seed=seed, noise=noise, progress=bar.update)
    bar.close()
    with files.atomic_path(out, directory=True) as tmp:
        for name, image in zip(names, images):
            (tmp / "faces" / name).parent.mkdir(parents=True, exist_ok=True)
            files.save_png(tmp / "faces" / name, image[..., 0] if image.shape[-1] == 1 else image)
        files.save_npz(tmp / "faces_au.npz", names=np.array(names), aus=np.array(render.AUS),
                       intensities=intensities, regions=np.packbits(regions, axis=-1),
                       regions_shape=np.array(regions.shape))
        files.write_json(tmp / "provenance.json", stamp(
            {"per_class": per_class, "size": size, "channels": int(channels), "noise": noise, "seed": seed},
            study="synthetic: rendered faces with known action-unit regions (ferjax.render)"))
    click.echo(f"wrote {len(names)} synthetic faces to {out}/faces")


def read_ground_truth(path, names):
    """AU intensities and unpacked regions from a ``faces_au.npz``, in the order of ``names``."""
    try:
        with np.load(path) as z:
            gt_names = [str(n) for n in z["names"]]
            shape = tuple(z["regions_shape"])
            regions = np.unpackbits(z["regions"], axis=-1, count=shape[-1]).astype(bool)
            intensities = z["intensities"]
    except (OSError, KeyError, ValueError) as err:
        raise InputError(path, None, f"not a ferjax ground-truth file ({err})",
                         "make one with `ferjax synth`, or set prepare.ground_truth: null") from None
    index = {n: i for i, n in enumerate(gt_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise InputError(path, f"image '{missing[0]}'", f"no ground truth for {len(missing)} image(s)")
    order = [index[n] for n in names]
    return intensities[order], regions[order]


@main.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="reference", show_default=True,
              help="On-disk format of the dataset (see the README's 'Your own data').")
@click.option("--root", type=click.Path(path_type=Path), required=True, help="Dataset folder.")
@click.option("--annotations", type=click.Path(path_type=Path), default=None,
              help="Annotation file for affectnet / fer2013 / rafdb, if not in its usual place.")
@click.option("--size", type=click.IntRange(8), default=64, show_default=True, help="Model input side.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True)
@click.option("--skip-bad", is_flag=True, help="Skip and count unreadable or mislabelled files instead of failing.")
@click.option("--ground-truth", type=click.Path(path_type=Path), default=None,
              help="faces_au.npz with action-unit regions (synthetic study only).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None, help="Counts as JSON.")
@_user_errors
def prepare(fmt, root, annotations, size, channels, skip_bad, ground_truth, out, metrics):
    """Read a face dataset into one array file.

    Reads ROOT in FORMAT, converts to CHANNELS and SIZE x SIZE, and writes
    OUT/dataset.npz (images uint8 (N, SIZE, SIZE, CHANNELS), labels in
    AffectNet numbering, names, the dataset's own split hints, and AU ground
    truth when given) plus OUT/provenance.json. METRICS gets the image count
    per class and the skipped files by reason.

    Params (params.yaml, section `prepare`): format, root, annotations, size,
    channels, skip_bad, ground_truth.
    """
    ds = load_dataset(fmt, root, size=size, channels=int(channels), annotations=annotations,
                      skip_bad=skip_bad)
    arrays = {"images": ds.images, "labels": ds.labels.astype(np.int64), "names": np.array(ds.names),
              "split": np.array(ds.split)}
    if ground_truth is not None:
        arrays["intensities"], regions = read_ground_truth(ground_truth, ds.names)
        arrays["regions"] = np.packbits(regions, axis=-1)
        arrays["regions_shape"] = np.array(regions.shape)
    params = {"format": fmt, "root": str(root), "annotations": annotations and str(annotations),
              "size": size, "channels": int(channels), "skip_bad": skip_bad,
              "ground_truth": ground_truth and str(ground_truth)}
    counts = {NAMES[c]: int((ds.labels == c).sum()) for c in range(len(NAMES))}
    with files.atomic_path(out, directory=True) as tmp:
        files.save_npz(tmp / "dataset.npz", **arrays)
        files.write_json(tmp / "provenance.json", stamp(params))
    if metrics:
        files.write_json(metrics, {"images": len(ds.labels), "per_class": counts,
                                   "skipped": dict(sorted(ds.skipped.items()))})
    click.echo(f"prepared {len(ds.labels)} images from {root} ({fmt}); skipped {sum(ds.skipped.values())}")


def _load_dataset_npz(path):
    path = Path(path)
    if path.is_dir():
        path = path / "dataset.npz"
    if not path.exists():
        raise InputError(path, None, "file not found", "run `ferjax prepare` first")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@main.command()
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Output of `ferjax prepare`.")
@click.option("--val", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--test", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--stimuli-per-class", type=click.IntRange(0), default=35, show_default=True,
              help="Images per class held out as 2AFC stimuli (reference: 35).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@_user_errors
def split(dataset, val, test, stimuli_per_class, seed, out, metrics):
    """Assign each image a role: train, val, test or stimulus.

    Stratified by class. Stimuli come first and never appear in the network's
    train, validation or test sets. Writes OUT/splits.csv (name, label, role)
    and OUT/provenance.json; METRICS gets the counts per role.

    Params (section `split`): val, test, stimuli_per_class, seed.
    """
    ds = _load_dataset_npz(dataset)
    try:
        roles = data.split_roles(ds["labels"], val=val, test=test,
                                 stimuli_per_class=stimuli_per_class, seed=seed)
    except ValueError as err:
        raise InputError(dataset, "labels", str(err), "lower split.stimuli_per_class") from None
    table = pd.DataFrame({"name": ds["names"], "label": ds["labels"], "role": roles})
    params = {"val": val, "test": test, "stimuli_per_class": stimuli_per_class, "seed": seed}
    with files.atomic_path(out, directory=True) as tmp:
        files.write_csv(tmp / "splits.csv", table)
        files.write_json(tmp / "provenance.json", stamp(params))
    if metrics:
        files.write_json(metrics, {r: int((roles == r).sum()) for r in data.ROLES})
    click.echo(", ".join(f"{r}: {int((roles == r).sum())}" for r in data.ROLES))


def _stimulus_name(label, name):
    """``<label>/<stem>.png`` for a dataset image, whatever its original path."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(name)).stem)
    return f"{int(label)}/{stem}.png"


@main.command()
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Output of `ferjax prepare`.")
@click.option("--splits", type=click.Path(path_type=Path), required=True, help="Output of `ferjax split`.")
@click.option("--display-size", type=click.IntRange(16), default=256, show_default=True,
              help="Side of the display frame in pixels (reference: 256).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the foil assignment.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@_user_errors
def stimuli(dataset, splits, display_size, seed, out):
    """Write the stimulus set and its 2AFC trial list.

    The images with role `stimulus` are resized to DISPLAY_SIZE and written in
    the reference layout OUT/<label>/<name>.png. OUT/trials.csv
    (filename,true,foil) gives each image one fixed foil, balanced within each
    class over the 7 other classes. With AU ground truth, OUT/regions.npz holds
    each stimulus's AU intensities and regions (on the dataset's pixel grid).

    Params (section `stimuli`): display_size, seed.
    """
    ds = _load_dataset_npz(dataset)
    splits_csv = Path(splits) / "splits.csv" if Path(splits).is_dir() else Path(splits)
    table = pd.read_csv(splits_csv)
    if list(table["name"]) != [str(n) for n in ds["names"]]:
        raise InputError(splits_csv, "column 'name'", "does not match the dataset's images",
                         "re-run `ferjax split` on this dataset")
    idx = np.flatnonzero(table["role"].to_numpy() == "stimulus")
    if len(idx) == 0:
        raise InputError(splits_csv, "column 'role'", "no image has role 'stimulus'",
                         "set split.stimuli_per_class above 0")
    labels = ds["labels"][idx]
    foils = data.assign_foils(labels, seed=seed)
    names = [_stimulus_name(lab, ds["names"][i]) for lab, i in zip(labels, idx)]
    with files.atomic_path(out, directory=True) as tmp:
        for name, i in zip(names, idx):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            image = data.resize(ds["images"][i], display_size)
            files.save_png(tmp / name, image[..., 0] if image.shape[-1] == 1 else image)
        files.write_csv(tmp / "trials.csv", pd.DataFrame({"filename": names, "true": labels, "foil": foils}))
        if "regions" in ds:
            files.save_npz(tmp / "regions.npz", names=np.array(names), intensities=ds["intensities"][idx],
                           regions=ds["regions"][idx], regions_shape=np.array([len(idx), *ds["regions_shape"][1:]]))
        files.write_json(tmp / "provenance.json", stamp({"display_size": display_size, "seed": seed}))
    click.echo(f"wrote {len(names)} stimuli and their trial list to {out}")


@main.command()
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli` (trials.csv, optional regions.npz).")
@click.option("--participants", "n_participants", type=click.IntRange(1), default=22, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--radius", type=click.FloatRange(0, min_open=True), default=15.0, show_default=True,
              help="Reveal-disk radius in display pixels.")
@click.option("--display-size", type=click.IntRange(16), default=256, show_default=True)
@click.option("--behaviour", "behaviour_json", default="{}", show_default=True,
              help="JSON object overriding participant behaviour (criterion, sensitivity, lapse, ...).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Log folder to write.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@_user_errors
def simulate(stimuli_dir, n_participants, seed, radius, display_size, behaviour_json, out, metrics):
    """Run simulated participants through the reveal-and-choose task.

    Writes click logs in exactly the reference program's layout: one folder
    OUT/<yymmdd>_<participant> per person with choices.csv
    (filename,true,false,chosen,correct,time,count) and clicks.csv
    (filename,x_pos,y_pos,time). METRICS gets percent correct (0-click trials
    scored wrong, as in the reference), clicks and time per trial, and the
    hardest and easiest pairs. These are simulated people, not data.

    Params (section `simulate`): participants, seed, radius, display_size,
    behaviour (see ferjax.participants.Behaviour).
    """
    import json

    trials_csv = Path(stimuli_dir) / "trials.csv"
    if not trials_csv.exists():
        raise InputError(trials_csv, None, "file not found", "run `ferjax stimuli` first")
    trials = pd.read_csv(trials_csv)
    masks = intensities = None
    regions_npz = Path(stimuli_dir) / "regions.npz"
    if regions_npz.exists():
        intensities, masks = read_ground_truth(regions_npz, list(trials["filename"]))
    try:
        behaviour = participants.Behaviour(**json.loads(behaviour_json))
    except (TypeError, ValueError) as err:
        raise InputError("--behaviour", None, f"not valid behaviour settings ({err})") from None
    log, clicks, dates = participants.simulate(
        list(trials["filename"]), trials["true"].to_numpy(), trials["foil"].to_numpy(), masks,
        intensities, participants=n_participants, seed=seed, display=display_size, radius=radius,
        behaviour=behaviour, progress=tqdm(total=n_participants, desc="participants", disable=None, leave=False))
    with files.atomic_path(out, directory=True) as tmp:
        human.save_reference(log, clicks, tmp, dates)
    summary = participants.summarise(log)
    if metrics:
        files.write_json(metrics, {"synthetic": True, **summary})
    click.echo(f"{n_participants} simulated participants: {summary['percent_correct']:.3f} correct, "
               f"median {summary['clicks_median']:g} clicks per trial")


def _grid_option(text):
    if text in (None, "", "None"):
        return None
    try:
        rows, cols = (int(v) for v in str(text).replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not ROWS,COLS") from None
    return rows, cols


def _mean_faces(stimuli_dir, filenames, pairs, trials, size):
    """Mean grayscale face (size, size) uint8 of each ordered pair's stimuli."""
    from PIL import Image

    foil_of = trials.drop_duplicates("filename").set_index("filename")[["true", "foil"]]
    faces = []
    for true, foil in pairs:
        names = [f for f in filenames if tuple(foil_of.loc[f]) == (true, foil)]
        stack = []
        for name in names:
            path = Path(stimuli_dir) / name
            try:
                with Image.open(path) as im:
                    stack.append(np.asarray(im.convert("L").resize((size, size), Image.Resampling.BILINEAR), float))
            except OSError as err:
                raise InputError(path, None, f"cannot read stimulus image ({err})",
                                 "--stimuli must hold the images the logs name") from None
        faces.append(np.round(np.mean(stack, axis=0)).astype(np.uint8))
    return faces


@main.command("human")
@click.option("--logs", type=click.Path(path_type=Path), required=True,
              help="Click logs: reference layout (<yymmdd>_<participant>/choices.csv, clicks.csv) or tidy tables.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), default=None,
              help="Stimulus folder, for the mean face under each pair map in the figure.")
@click.option("--size", type=click.IntRange(8), default=256, show_default=True, help="Display frame side.")
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
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None, help="Folder for plot CSVs and the figure.")
@_user_errors
def human_cmd(logs, stimuli_dir, size, reveal, radius, grid, weighting, rate, sigma, splits, seed, out,
              metrics, plots):
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

    Params (section `human`): logs, size, reveal, radius, grid, weighting, rate,
    sigma, splits, seed.
    """
    trials, clicks = human.load_logs(logs, size=size)
    options = dict(size=size, reveal=reveal, radius=radius, grid=_grid_option(grid), weighting=weighting,
                   rate=rate, sigma=sigma)
    maps, filenames = human.rasterize(trials, clicks, which="all", **options)
    correct_maps, correct_names = human.rasterize(trials, clicks, which="correct", **options)
    if list(correct_names) != list(filenames):
        correct_maps = np.stack([correct_maps[list(correct_names).index(f)] if f in correct_names
                                 else np.zeros((size, size), np.float32) for f in filenames])
    pair_all, pairs = human.pair_maps(maps, filenames, trials)
    pair_correct, _ = human.pair_maps(correct_maps, filenames, trials)
    scores = human.score(trials)
    table, correlations = human.pair_stats(trials)
    reliability = human.split_half(trials, clicks, n_splits=splits, seed=seed, **options)

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
    }
    params = {k: v for k, v in options.items()}
    params.update(logs=str(logs), splits=splits, seed=seed)
    with files.atomic_path(out, directory=True) as tmp:
        files.save_npz(tmp / "maps.npz", image_all=maps, image_correct=correct_maps, pair_all=pair_all,
                       pair_correct=pair_correct, filenames=np.array(filenames), pairs=np.asarray(pairs))
        files.write_csv(tmp / "images.csv", images)
        files.write_csv(tmp / "pairs.csv", pair_table)
        files.write_json(tmp / "provenance.json", stamp(params))
    if plots:
        plots = Path(plots)
        files.write_csv(plots / "human_pairs.csv", pair_table[["pair", "accuracy", "lo", "hi", "clicks", "time"]])
        if stimuli_dir is not None:
            from ferjax import figures

            # Tiles of at most 128 px keep the figure small enough to version in git.
            tile = min(size, 128)
            faces = _mean_faces(stimuli_dir, filenames, pairs, trials, tile)
            tiles = [figures.overlay(face, figures.fit(m, tile)) for face, m in zip(faces, pair_all)]
            sheet = figures.grid(tiles, list(pair_table["pair"]), cols=7)
            with files.atomic_path(plots / "human_pair_maps.png") as tmp:
                files.save_png(tmp, sheet)
    if metrics:
        files.write_json(metrics, summary)
    click.echo(f"{summary['participants']} participants, {summary['trials']} trials: "
               f"{summary['percent_correct']:.3f} correct; map reliability (split-half, Spearman-Brown) "
               f"{summary['reliability']['spearman_brown']:.3f} ± {summary['reliability']['sd']:.3f}")


def _register_experiment():
    # The experiment's web stack loads only when one of its subcommands runs.
    from ferjax.experiment.cli import experiment

    main.add_command(experiment)


_register_experiment()
