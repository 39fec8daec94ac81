"""A tiny synthetic stimulus set for trying the experiment, its tests and its load check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ferjax.faces.labels import NUM_CLASSES


def make_stimuli(folder, per_class: int = 1, size: int = 256, seed: int = 0):
    """Write ``folder/<label>/<label>_<k>.png`` (coloured shapes) and ``folder/trials.csv`` -> trials path.

    Image k of label l gets the foil (l + 1 + k) mod 8, so foils cycle over the other classes.
    """
    folder, rng = Path(folder), np.random.default_rng(seed)
    rows = []
    for label in range(NUM_CLASSES):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            colour = tuple(int(v) for v in rng.integers(40, 230, 3))
            img = Image.new("RGB", (size, size), tuple(255 - v for v in colour))
            draw = ImageDraw.Draw(img)
            draw.ellipse((size * 0.2, size * 0.1, size * 0.8, size * 0.9), fill=colour)
            draw.rectangle((size * 0.35, size * (0.3 + 0.05 * label), size * 0.65, size * 0.4 + 0.05 * label * size),
                           fill=(255, 255, 255))
            name = f"{label}/{label}_{k}.png"
            img.save(folder / name)
            rows.append((name, label, (label + 1 + k) % NUM_CLASSES))
    path = folder / "trials.csv"
    pd.DataFrame(rows, columns=["filename", "true", "foil"]).to_csv(path, index=False, lineterminator="\n")
    return path
