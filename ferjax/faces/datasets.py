"""Loaders for facial-expression datasets in their real on-disk formats.

:func:`load_dataset` reads one of :data:`FORMATS` into a :class:`Dataset`
labelled in AffectNet's numbering (``ferjax.faces.labels``). Each image is converted
with Pillow to "L" (``channels=1``) or "RGB" (``channels=3``) and resized to
``size`` x ``size`` bilinearly. Names are unique and come in natural order
(digit runs compare as numbers, so "row 2" precedes "row 10").

Bad input raises :class:`~ferjax.plumbing.errors.InputError` naming the file and the
row, line or column at fault. With ``skip_bad=True`` row- and file-level
problems are counted in ``Dataset.skipped`` instead, under "bad row",
"bad value", "bad label", "duplicate", "missing image", "unreadable image" or
"unexpected file"; structural problems (missing root, annotation file or
column, bad folder name, no images at all) always raise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferjax.faces.formats import ANNOTATION_FILES, LOADERS, Collector, Dataset
from ferjax.plumbing.errors import InputError

FORMATS = ("reference", "affectnet", "fer2013", "rafdb", "folders")


def load_dataset(fmt: str, root, *, size: int = 64, channels: int = 1, annotations=None,
                 skip_bad: bool = False) -> Dataset:
    """Load the dataset at ``root`` stored in format ``fmt``, one of :data:`FORMATS`.

    "reference" (Park & Wallraven's stimuli) is ``root/<label>/<name>.jpg``
    with folders named 0..7; "folders" is ``root/<class name>/<name>.png``
    with class names from ``NAMES`` or :data:`FOLDER_SYNONYMS`, any case; both
    take .png, .jpg and .jpeg. "affectnet", "fer2013" and "rafdb" are
    described by their loaders. ``annotations`` is the CSV/TXT file for "affectnet", "fer2013" and "rafdb"
    (default: :data:`ANNOTATION_FILES` inside root); the folder formats take
    none. Raises ValueError for a bad argument, InputError for bad input.
    """
    if fmt not in LOADERS:
        raise ValueError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not (isinstance(size, int) and size > 0) or channels not in (1, 3):
        raise ValueError(f"size must be a positive int and channels 1 or 3, got {size!r}, {channels!r}")
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, None, "dataset folder not found")
    source = root
    if fmt in ANNOTATION_FILES:
        source = Path(annotations) if annotations is not None else root / ANNOTATION_FILES[fmt]
        if not source.is_file():
            hint = f"pass annotations= or put {ANNOTATION_FILES[fmt]} in {root}"
            raise InputError(source, None, "annotation file not found", hint)
    elif annotations is not None:
        raise ValueError(f"format {fmt!r} takes no annotations file")
    out = Collector(size, channels, skip_bad)
    LOADERS[fmt](root, source, out)
    return out.finish(source)


def load_prepared(path, keys=None) -> dict:
    """The arrays of a prepared ``dataset.npz`` (or the folder holding it), all or only ``keys``."""
    path = Path(path)
    if path.is_dir():
        path = path / "dataset.npz"
    if not path.exists():
        raise InputError(path, None, "file not found", "run `ferjax prepare` first")
    with np.load(path) as z:
        return {k: z[k] for k in z.files if keys is None or k in keys}


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
