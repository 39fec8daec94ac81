"""The `prepare` stage: read a face dataset in its own format into one array file."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ferjax.faces.datasets import (
    FORMATS,
    load_dataset,
    read_ground_truth,
)
from ferjax.faces.labels import NAMES
from ferjax.plumbing import files
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp


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
