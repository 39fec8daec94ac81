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
@click.option("--per-class", type=click.IntRange(1), default=600, show_default=True)
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


def _stimulus_images(stimuli_dir, filenames, size, channels):
    """Stimuli as float [0, 1] arrays at their display size (N, S, S, 3 or 1)."""
    from PIL import Image

    out = []
    for name in filenames:
        path = Path(stimuli_dir) / name
        try:
            with Image.open(path) as im:
                out.append(np.asarray(im.convert("RGB" if channels == 3 else "L"), np.float32) / 255.0)
        except OSError as err:
            raise InputError(path, None, f"cannot read stimulus image ({err})") from None
    images = np.stack(out)
    return images if channels == 3 else images[..., None]


def _to_model(images, size, channels):
    """Display-frame images (N, S, S, C) in [0, 1] -> the model's input (N, size, size, channels)."""
    import jax

    from ferjax import display

    x = display.grayscale(images) if channels == 1 else images
    return np.asarray(jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "linear", antialias=True))


@main.command("train")
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Output of `ferjax prepare`.")
@click.option("--splits", type=click.Path(path_type=Path), required=True, help="Output of `ferjax split`.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli`: the 2AFC trial list the network is scored on.")
@click.option("--logs", type=click.Path(path_type=Path), default=None,
              help="Click logs: also score the network on what each participant saw.")
@click.option("--model", "model_name", type=click.Choice(["tiny", "small", "resnet18"]), default="small",
              show_default=True)
@click.option("--mode", type=click.Choice(["multiclass", "one_vs_one"]), default="multiclass", show_default=True,
              help="One 8-way softmax, or one binary classifier per class pair (the reference's).")
@click.option("--steps", type=click.IntRange(1), default=2500, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=3e-3, show_default=True,
              help="Peak AdamW learning rate (linear warm-up, then cosine decay).")
@click.option("--warmup", type=click.IntRange(0), default=50, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(0), default=1e-4, show_default=True)
@click.option("--label-smoothing", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--balanced/--no-balanced", default=True, show_default=True, help="Class-balanced sampling.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random shift, flip, brightness and contrast inside the compiled step.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True,
              help="Compute type; bfloat16 is mixed precision for GPUs (parameters stay float32).")
@click.option("--save-every", type=click.IntRange(1), default=250, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model folder to write.")
@click.option("--checkpoints", type=click.Path(path_type=Path), default=None,
              help="Orbax checkpoint folder; a killed run resumes from its last checkpoint.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None)
@_user_errors
def train_cmd(dataset, splits, stimuli_dir, logs, model_name, mode, steps, batch_size, lr, warmup, weight_decay,
              label_smoothing, balanced, augment, dtype, save_every, seed, out, checkpoints, metrics, plots):
    """Train the expression network and score it on the people's 2AFC trials.

    Trains on the images with role `train` (validation: `val`) and writes
    OUT/params.npz and OUT/model.json (the network: `ferjax.model` name,
    input size and channels, mode). METRICS gets test accuracy, per-class
    accuracy, macro-F1 and the confusion matrix, and the network's 2AFC
    percent correct on the stimulus trial list (each stimulus with its foil),
    per class and overall with Wilson 95% intervals. With LOGS it also scores
    the network on what each participant saw when choosing (original where
    uncovered, the 70x70-blurred grayscale elsewhere). PLOTS gets
    confusion.png and model_pairs.csv (2AFC accuracy per ordered pair).

    Params (section `train`): model, mode, steps, batch_size, lr, warmup,
    weight_decay, label_smoothing, balanced, augment, dtype, save_every, seed.
    """
    import hashlib
    import json

    import jax.numpy as jnp

    from ferjax import display, figures, model, train

    ds = _load_dataset_npz(dataset)
    splits_csv = Path(splits) / "splits.csv" if Path(splits).is_dir() else Path(splits)
    roles = pd.read_csv(splits_csv)["role"].to_numpy()
    if len(roles) != len(ds["labels"]):
        raise InputError(splits_csv, "column 'role'", "does not match the dataset", "re-run `ferjax split`")
    pick = {r: roles == r for r in ("train", "val", "test")}
    for role in ("train", "test"):
        if not pick[role].any():
            raise InputError(splits_csv, "column 'role'", f"no image has role '{role}'",
                             "raise split.test or use a larger dataset")
    has_val = bool(pick["val"].any())
    config = dict(model=model_name, mode=mode, steps=steps, batch_size=batch_size, lr=lr, warmup=warmup,
                  weight_decay=weight_decay, label_smoothing=label_smoothing, balanced=balanced, augment=augment,
                  dtype=dtype, save_every=save_every, seed=seed)
    jdtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    ckpt = None
    if checkpoints is not None:
        # Checkpoints are only resumed by a run with the same settings and data.
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        digest.update(ds["images"][pick["train"]].tobytes())
        ckpt = Path(checkpoints) / digest.hexdigest()[:16]
    params, history = train.train(
        ds["images"][pick["train"]], ds["labels"][pick["train"]], ds["images"][pick["val"]] if has_val else None,
        ds["labels"][pick["val"]] if has_val else None, model=model_name, mode=mode, steps=steps, batch_size=batch_size, lr=lr,
        warmup=warmup, weight_decay=weight_decay, label_smoothing=label_smoothing, balanced=balanced,
        augment=augment, seed=seed, dtype=jdtype, checkpoint_dir=ckpt, save_every=save_every)
    spec = dict(model=model_name, mode=mode, num_classes=len(NAMES), dtype=jdtype)
    test = train.evaluate(params, ds["images"][pick["test"]], ds["labels"][pick["test"]], **spec)

    size, channels = int(ds["images"].shape[1]), int(ds["images"].shape[-1])
    trials = pd.read_csv(Path(stimuli_dir) / "trials.csv")
    shown = _stimulus_images(stimuli_dir, trials["filename"], size, channels)
    stim = trials.assign(correct=train.two_afc(params, _to_model(shown, size, channels), trials["true"],
                                               trials["foil"], **spec))
    summary = {"test_accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
               "val_accuracy": float(history["val_accuracy"][-1]) if len(history["val_accuracy"]) else None,
               "per_class": {NAMES[c]: float(v) for c, v in enumerate(test["per_class"])},
               "confusion": test["confusion"].tolist(), "steps": steps, "mode": mode, "model": model_name}
    k, n = int(stim["correct"].sum()), len(stim)
    lo, hi = human.wilson(k, n)
    summary["two_afc"] = {"percent_correct": k / n, "ci95": [float(lo), float(hi)],
                          "per_class": {NAMES[c]: float(g["correct"].mean()) for c, g in stim.groupby("true")}}
    seen_table = None
    if logs is not None:
        log_trials, log_clicks = human.load_logs(logs, size=shown.shape[1])
        index = {f: i for i, f in enumerate(trials["filename"])}
        missing = sorted(set(log_trials["filename"]) - set(index))
        if missing:
            raise InputError(logs, f"image '{missing[0]}'", "is not in the stimulus trial list",
                             "--logs and --stimuli must come from the same study")
        answers = np.zeros(len(log_trials), bool)
        rows_all = log_trials["filename"].map(index).to_numpy()
        for rows, masks in human.trial_masks(log_trials, log_clicks, size=shown.shape[1]):
            views = display.seen(shown[rows_all[rows]], masks)
            t = log_trials.iloc[rows]
            answers[rows] = train.two_afc(params, _to_model(np.asarray(views), size, channels),
                                          t["true"], t["foil"], **spec)
        seen_table = log_trials.assign(model_seen=answers)
        k, n = int(answers.sum()), len(answers)
        lo, hi = human.wilson(k, n)
        summary["two_afc_seen"] = {"percent_correct": k / n, "ci95": [float(lo), float(hi)]}
    pair_rows = []
    for (t, f), g in stim.groupby(["true", "foil"]):
        row = {"pair": f"{NAMES[t]} vs {NAMES[f]}", "true": t, "foil": f, "model_full": g["correct"].mean()}
        if seen_table is not None:
            s = seen_table[(seen_table["true"] == t) & (seen_table["foil"] == f)]
            row["model_seen"] = s["model_seen"].mean()
        pair_rows.append(row)
    pair_table = pd.DataFrame(pair_rows)

    with files.atomic_path(out, directory=True) as tmp:
        files.save_tree(tmp / "params.npz", params)
        files.write_json(tmp / "model.json", {"model": model_name, "mode": mode, "size": size, "channels": channels,
                                              "num_classes": len(NAMES), "dtype": dtype})
        files.write_csv(tmp / "stimuli_2afc.csv", stim)
        if seen_table is not None:
            files.write_csv(tmp / "seen_2afc.csv", seen_table)
        files.write_json(tmp / "provenance.json", stamp(config))
    if plots:
        files.write_csv(Path(plots) / "model_pairs.csv", pair_table)
        conf = test["confusion"] / np.maximum(test["confusion"].sum(1, keepdims=True), 1)
        big = np.kron(figures.heat(conf), np.ones((40, 40, 1), np.uint8))
        with files.atomic_path(Path(plots) / "confusion.png") as tmp:
            files.save_png(tmp, figures.grid([big], [f"rows true, cols predicted: {', '.join(NAMES)}"], cols=1,
                                             label_height=16))
    if metrics:
        files.write_json(metrics, summary)
    seen_text = f", on what people saw {summary['two_afc_seen']['percent_correct']:.3f}" if seen_table is not None else ""
    click.echo(f"test accuracy {test['accuracy']:.3f}; 2AFC on the stimuli {summary['two_afc']['percent_correct']:.3f}"
               + seen_text)


def load_model(model_dir):
    """``(params, features, classifier, spec)`` of a network saved by `ferjax train`.

    ``features`` takes images in [0, 1] (N, H, W, C) and applies the
    network's input standardisation, so that attribution methods perturb
    images in their natural range.
    """
    import json

    import jax

    from ferjax import model

    model_dir = Path(model_dir)
    try:
        spec = json.loads((model_dir / "model.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(model_dir / "model.json", None, f"cannot read ({err})", "run `ferjax train` first") from None
    ovo = spec["mode"] == "one_vs_one"
    num = 2 if ovo else spec["num_classes"]
    init = lambda k: model.create(spec["model"], num_classes=num, channels=spec["channels"],  # noqa: E731
                                  size=spec["size"], key=k)[0]
    like = jax.eval_shape(jax.vmap(init), jax.random.split(jax.random.key(0), 28)) if ovo else \
        jax.eval_shape(init, jax.random.key(0))
    try:
        params = files.load_tree(model_dir / "params.npz", like)
    except (OSError, ValueError) as err:
        raise InputError(model_dir / "params.npz", None, str(err), "re-run `ferjax train`") from None
    features, classifier = model.functions(spec["model"], num_classes=num, channels=spec["channels"])

    def standardised(p, x):
        return features(p, model.preprocess(x))

    return params, standardised, classifier, spec


@main.command("attribute")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax train`.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli`.")
@click.option("--areas", default="0.1", show_default=True,
              help="Comma-separated Extremal Perturbation areas (fractions of the image).")
@click.option("--variant", type=click.Choice(["preserve", "delete", "dual"]), default="preserve", show_default=True)
@click.option("--max-iter", type=click.IntRange(1), default=800, show_default=True)
@click.option("--step", type=click.IntRange(1), default=7, show_default=True)
@click.option("--sigma", type=click.FloatRange(0, min_open=True), default=21.0, show_default=True)
@click.option("--scale-to", type=click.IntRange(1), default=224, show_default=True,
              help="Scale step and sigma by image size / SCALE_TO (TorchRay's defaults suit 224 px).")
@click.option("--jitter/--no-jitter", default=True, show_default=True)
@click.option("--preset", type=click.Choice(["faithful", "fast"]), default="faithful", show_default=True,
              help="faithful: TorchRay's SGD schedule; fast: Adam with the area weight's growth rescaled "
                   "to MAX_ITER (a deliberate change, for few iterations).")
@click.option("--ep-targets", default="true,contrast", show_default=True,
              help="Targets Extremal Perturbation explains: true, contrast or both (it costs max_iter passes each).")
@click.option("--batch", type=click.IntRange(1), default=35, show_default=True,
              help="Stimuli per compiled Extremal Perturbation call.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--plots", type=click.Path(path_type=Path), default=None, help="Folder for the contact sheet.")
@_user_errors
def attribute_cmd(model_dir, stimuli_dir, areas, variant, max_iter, step, sigma, scale_to, jitter, preset,
                  ep_targets, batch, out, plots):
    """Explain the network on every stimulus with CAM, GradCAM and Extremal Perturbation.

    For each stimulus and two targets, the true class (`true`) and the
    contrast true-minus-foil logit (`contrast`), writes OUT/maps.npz with
    `cam_<target>`, `gradcam_<target>` (N, H, W) and `ep_<target>`
    (N, areas, H, W) at the network's input size, the EP rewards and reached
    areas, and OUT/index.csv (row, filename, true, foil). CAM and GradCAM
    follow pytorch-grad-cam's conventions (ReLU, min-max, bilinear upsampling);
    EP is TorchRay's algorithm and defaults, with step and sigma scaled to the
    image size. PLOTS gets attribution_sheet.png: overlays of every method on
    the first stimuli of each class.

    Params (section `attribute`): areas, variant, max_iter, step, sigma,
    scale_to, jitter, preset, ep_targets, batch.
    """
    import jax

    from ferjax import attribution, figures
    from ferjax.train import pair_index

    params, features, classifier, spec = load_model(model_dir)
    try:
        area_list = tuple(float(a) for a in str(areas).split(","))
    except ValueError:
        raise InputError("--areas", None, f"{areas!r} is not a comma-separated list of numbers") from None
    ep_for = [t.strip() for t in str(ep_targets).split(",") if t.strip()]
    if not set(ep_for) <= {"true", "contrast"}:
        raise InputError("--ep-targets", None, f"{ep_targets!r}: choose from true, contrast")
    trials = pd.read_csv(Path(stimuli_dir) / "trials.csv")
    size, channels = spec["size"], spec["channels"]
    images = _to_model(_stimulus_images(stimuli_dir, trials["filename"], size, channels), size, channels)
    true, foil = trials["true"].to_numpy(), trials["foil"].to_numpy()
    n = len(trials)
    result = {}
    # Each stimulus is explained by the network that answered it: the 8-way one,
    # or in one_vs_one mode the binary network of its (true, foil) pair.
    if spec["mode"] == "one_vs_one":
        net = pair_index(true, foil)
        t_idx, f_idx = (true > foil).astype(int), (foil > true).astype(int)
    else:
        net, t_idx, f_idx = np.zeros(n, int), true, foil
    bar = tqdm(total=n, desc="attribution", unit="img", disable=None, leave=False)
    for k in np.unique(net):
        p = jax.tree.map(lambda a: a[k], params) if spec["mode"] == "one_vs_one" else params
        rows_k = np.flatnonzero(net == k)
        for start in range(0, len(rows_k), batch):
            rows = rows_k[start:start + batch]
            x = images[rows]
            targets = {"true": t_idx[rows], "contrast": np.stack([t_idx[rows], f_idx[rows]], 1)}
            for name, tgt in targets.items():
                for method, fn in (("cam", attribution.cam), ("gradcam", attribution.gradcam)):
                    result.setdefault(f"{method}_{name}", np.zeros((n, size, size), np.float32))[rows] = \
                        np.asarray(fn(features, classifier, p, x, tgt))
                if name not in ep_for:
                    continue
                ep = attribution.extremal_perturbation(
                    features, classifier, p, x, tgt, areas=area_list, variant=variant, max_iter=max_iter,
                    step=step, sigma=sigma, jitter=jitter, scale_to=scale_to, preset=preset)
                result.setdefault(f"ep_{name}", np.zeros((n, len(area_list), size, size), np.float32))[rows] = \
                    np.asarray(ep["masks"])
                for key in ("reward", "area"):
                    result.setdefault(f"ep_{name}_{key}", np.zeros((n, len(area_list)), np.float32))[rows] = \
                        np.asarray(ep[key])
            bar.update(len(rows))
    bar.close()
    params_used = dict(areas=list(area_list), variant=variant, max_iter=max_iter, step=step, sigma=sigma,
                       scale_to=scale_to, jitter=jitter, preset=preset, ep_targets=ep_for, batch=batch)
    with files.atomic_path(out, directory=True) as tmp:
        files.save_npz(tmp / "maps.npz", areas=np.array(area_list), **result)
        files.write_csv(tmp / "index.csv", trials.assign(row=np.arange(n))[["row", "filename", "true", "foil"]])
        files.write_json(tmp / "provenance.json", stamp(params_used))
    if plots:
        methods = [("cam_true", "CAM"), ("gradcam_true", "GradCAM"), ("cam_contrast", "CAM contrast")]
        methods += [(f"ep_{t}", f"EP {area_list[0]:g} {t}") for t in ep_for]
        tiles, labels = [], []
        for c in range(len(NAMES)):
            row = int(np.flatnonzero(true == c)[0]) if (true == c).any() else None
            if row is None:
                continue
            face = np.round(images[row, ..., 0] * 255).astype(np.uint8) if channels == 1 else \
                np.round(images[row] * 255).astype(np.uint8)
            tiles.append(np.repeat(face[..., None], 3, -1) if face.ndim == 2 else face)
            labels.append(f"{NAMES[c]} vs {NAMES[foil[row]]}")
            for key, title in methods:
                m = result[key][row]
                tiles.append(figures.overlay(face, m[0] if m.ndim == 3 else m))
                labels.append(title)
        big = [np.kron(t, np.ones((2, 2, 1), np.uint8)) for t in tiles]
        with files.atomic_path(Path(plots) / "attribution_sheet.png") as tmp:
            files.save_png(tmp, figures.grid(big, labels, cols=len(methods) + 1))
    click.echo(f"explained {n} stimuli with CAM, GradCAM and EP (areas {', '.join(map(str, area_list))})")


def _click_points(trials_files, clicks, filenames):
    """Click positions per image as padded (N, K, 2) int (x, y) and (N, K) validity."""
    groups = {f: g[["x", "y"]].to_numpy() for f, g in clicks.groupby("filename")}
    k = max([len(v) for v in groups.values()] + [1])
    points, valid = np.zeros((len(filenames), k, 2), np.int32), np.zeros((len(filenames), k), bool)
    for i, f in enumerate(filenames):
        v = groups.get(f, np.zeros((0, 2)))
        points[i, :len(v)], valid[i, :len(v)] = np.floor(v).astype(np.int32), True
    return points, valid


@main.command("compare")
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
    points, valid = _click_points(trials, clicks, filenames)
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
        html_text = compare_study.build_report(result, accuracy, headline, hm, am, order, filenames, trials, stimuli_dir,
                                         provenance=json.loads((Path(model_dir) / "provenance.json").read_text()))
        with files.atomic_path(Path(report) / "index.html") as tmp:
            tmp.write_text(html_text)
    if metrics:
        files.write_json(metrics, headline)
    click.echo(compare_study.log_text(result["ranking"], headline))
