"""The `stimuli` stage: the stimulus images at display size and their 2AFC trial list."""

from __future__ import annotations

import re
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ferjax.faces import selection
from ferjax.faces.datasets import (
    load_prepared,
)
from ferjax.faces.images import resize_image
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp


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
    ds = load_prepared(dataset)
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
    foils = selection.assign_foils(labels, seed=seed)
    names = [_stimulus_name(lab, ds["names"][i]) for lab, i in zip(labels, idx)]
    with files.atomic_path(out, directory=True) as tmp:
        for name, i in zip(names, idx):
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            image = resize_image(ds["images"][i], display_size)
            files.save_png(tmp / name, image[..., 0] if image.shape[-1] == 1 else image)
        files.write_csv(tmp / "trials.csv", pd.DataFrame({"filename": names, "true": labels, "foil": foils}))
        if "regions" in ds:
            files.save_npz(tmp / "regions.npz", names=np.array(names), intensities=ds["intensities"][idx],
                           regions=ds["regions"][idx], regions_shape=np.array([len(idx), *ds["regions_shape"][1:]]))
        files.write_json(tmp / "provenance.json", stamp({"display_size": display_size, "seed": seed}))
    click.echo(f"wrote {len(names)} stimuli and their trial list to {out}")
