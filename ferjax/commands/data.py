"""Data stages: `synth`, `prepare`, `split` and `stimuli`."""

from __future__ import annotations

import re
from pathlib import Path

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

from ferjax import data, files, render
from ferjax.datasets import FORMATS, load_dataset
from ferjax.errors import InputError
from ferjax.errors import cli_errors as _user_errors
from ferjax.labels import NAMES
from ferjax.provenance import stamp


def _bar(total, desc):
    return tqdm(total=total, desc=desc, unit="img", disable=None, leave=False)



@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("data"), show_default=True,
              help="Folder to write: OUT/faces/<label>/<name>.png and OUT/faces_au.npz.")
@click.option("--per-class", type=click.IntRange(1), default=600, show_default=True)
@click.option("--size", type=click.IntRange(16), default=64, show_default=True, help="Image side in pixels.")
@click.option("--channels", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="1 = grayscale, 3 = RGB.")
@click.option("--noise", type=click.FloatRange(0), default=0.02, show_default=True,
              help="Sensor noise SD, in units of full intensity.")
@click.option("--strength", default=",".join(f"{v:g}" for v in render.STRENGTH), show_default=True,
              help="LO,HI: each face's expression strength, uniform in [LO, HI], scales its prototype action "
                   "units (subtle expressions are harder).")
@click.option("--blend", type=click.FloatRange(0, 1), default=render.BLEND, show_default=True,
              help="Largest weight with which a face takes on the action units of its class's nearest other "
                   "expression (ambiguous faces; 0: none).")
@click.option("--seed", type=int, default=0, show_default=True)
@_user_errors
def synth(out, per_class, size, channels, noise, strength, blend, seed):
    """Render the synthetic face pool that stands in for AffectNet.

    Writes PER_CLASS faces of each of the 8 classes in the reference layout
    (OUT/faces/<label>/<label>_<k>.png) and the ground truth of where the
    evidence is: OUT/faces_au.npz holds each image's action-unit intensities
    and the region mask of every action unit.

    The repository ships this output as data/ (tracked by data.dvc), made with
    the defaults here; regenerate it with `ferjax synth && dvc add data`.
    """
    try:
        lo, hi = (float(v) for v in str(strength).split(","))
    except ValueError:
        raise InputError("--strength", None, f"{strength!r} is not LO,HI", "e.g. --strength 0.7,1") from None
    if not 0 <= lo <= hi <= 1:
        raise InputError("--strength", None, f"need 0 <= LO <= HI <= 1, got {strength!r}")
    bar = _bar(per_class * len(NAMES), "rendering")
    images, labels, names, intensities, regions = render.render_study(
        per_class, size=size, channels=int(channels), seed=seed, noise=noise, progress=bar.update,
        strength=(lo, hi), blend=blend)
    bar.close()
    with files.atomic_path(out, directory=True) as tmp:
        for name, image in zip(names, images):
            (tmp / "faces" / name).parent.mkdir(parents=True, exist_ok=True)
            files.save_png(tmp / "faces" / name, image[..., 0] if image.shape[-1] == 1 else image)
        files.save_npz(tmp / "faces_au.npz", names=np.array(names), aus=np.array(render.AUS),
                       intensities=intensities, regions=np.packbits(regions, axis=-1),
                       regions_shape=np.array(regions.shape))
        files.write_json(tmp / "provenance.json", stamp(
            {"per_class": per_class, "size": size, "channels": int(channels), "noise": noise,
             "strength": [lo, hi], "blend": blend, "seed": seed},
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


@click.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="reference", show_default=True,
              help="On-disk format of the dataset (see the README's 'Your own data').")
@click.option("--root", type=click.Path(path_type=Path), required=True, help="Dataset folder.")
@click.option("--annotations", type=click.Path(path_type=Path), default=None,
              help="Annotation file for affectnet / fer2013 / rafdb, if not in its usual place.")
@click.option("--image-size", "--size", "size", type=click.IntRange(8), default=64, show_default=True,
              help="Model input side (params: prepare.image_size).")
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


def _load_dataset_npz(path, keys=None):
    path = Path(path)
    if path.is_dir():
        path = path / "dataset.npz"
    if not path.exists():
        raise InputError(path, None, "file not found", "run `ferjax prepare` first")
    with np.load(path) as z:
        return {k: z[k] for k in z.files if keys is None or k in keys}


@click.command()
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


@click.command()
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
