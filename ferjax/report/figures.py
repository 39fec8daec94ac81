"""Figures as uint8 arrays: heat-map overlays and labelled grids.

Kept free of matplotlib so that figures render the same everywhere; the
stages save the arrays as PNG.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Anchor colours of a perceptually ordered dark-to-bright heat map.
_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)


def heat(values) -> np.ndarray:
    """Map values in [0, 1] (..., H, W) to RGB uint8 (..., H, W, 3)."""
    v = np.clip(np.asarray(values, float), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.minimum(np.floor(v).astype(int), len(_ANCHORS) - 2)
    frac = (v - lo)[..., None]
    return np.round(_ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac).astype(np.uint8)


def fit(values, size: int) -> np.ndarray:
    """Bilinearly resize a float map (H, W) to (size, size)."""
    image = Image.fromarray(np.asarray(values, np.float32))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def overlay(face, saliency, alpha: float = 0.55) -> np.ndarray:
    """Blend a heat map of ``saliency`` (H, W), min-max scaled, over a face (H, W[, C]) uint8.

    The blend weight grows with saliency, so unattended regions show the face.
    """
    face = np.asarray(face, float)
    if face.ndim == 3 and face.shape[-1] == 1:
        face = face[..., 0]
    if face.ndim == 2:
        face = np.repeat(face[..., None], 3, -1)
    s = np.asarray(saliency, float)
    span = s.max() - s.min()
    s = (s - s.min()) / span if span > 0 else np.zeros_like(s)
    w = alpha * s[..., None] ** 0.5
    return np.round(face * (1 - w) + heat(s) * w).astype(np.uint8)


def grid(tiles, labels=None, *, cols: int, pad: int = 4, label_height: int = 14,
         background: int = 255) -> np.ndarray:
    """Lay out RGB tiles (each (h, w, 3) uint8, or None for a blank) in a labelled grid."""
    tiles = list(tiles)
    h, w = next(t.shape[:2] for t in tiles if t is not None)
    rows = -(-len(tiles) // cols)
    cell_h = h + (label_height if labels is not None else 0)
    canvas = Image.new("RGB", (cols * (w + pad) + pad, rows * (cell_h + pad) + pad), (background,) * 3)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        x, y = pad + c * (w + pad), pad + r * (cell_h + pad)
        if labels is not None and labels[i]:
            draw.text((x, y), labels[i], fill=(0, 0, 0), font=font)
        if tile is not None:
            canvas.paste(Image.fromarray(tile), (x, y + cell_h - h))
    return np.asarray(canvas)
