"""`ferjax synth`: render the synthetic face pool of the embedded study (the raw data `data.dvc` tracks)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from ferjax.faces import expressions, render
from ferjax.faces.labels import NAMES
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp


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
@click.option("--strength", default=",".join(f"{v:g}" for v in expressions.STRENGTH), show_default=True,
              help="LO,HI: each face's expression strength, uniform in [LO, HI], scales its prototype action "
                   "units (subtle expressions are harder).")
@click.option("--blend", type=click.FloatRange(0, 1), default=expressions.BLEND, show_default=True,
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
        files.save_npz(tmp / "faces_au.npz", names=np.array(names), aus=np.array(expressions.AUS),
                       intensities=intensities, regions=np.packbits(regions, axis=-1),
                       regions_shape=np.array(regions.shape))
        files.write_json(tmp / "provenance.json", stamp(
            {"per_class": per_class, "size": size, "channels": int(channels), "noise": noise,
             "strength": [lo, hi], "blend": blend, "seed": seed},
            study="synthetic: rendered faces with known action-unit regions (ferjax.faces.render)"))
    click.echo(f"wrote {len(names)} synthetic faces to {out}/faces")
