"""Stimulus images: read from the stimulus folder, resized, and converted to a network's input.

Two resizes, for two kinds of data: :func:`resize_image` is Pillow's
bilinear filter on one uint8 image (how stimuli are written at display size),
:func:`resize` is JAX's antialiased bilinear resize of a float batch (how
stimuli become a network's input, and how maps are brought to a common size).
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from PIL import Image

from ferjax.faces import display
from ferjax.plumbing.errors import InputError


def read_stimuli(stimuli_dir, filenames, channels: int) -> np.ndarray:
    """Stimuli as float32 arrays in [0, 1] at their display size, (N, S, S, 3) or (N, S, S, 1)."""
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


def resize(batch, size) -> np.ndarray:
    """Antialiased bilinear resize of a batch (N, H, W[, C]) to (N, size, size[, C]), float32; ``size`` may be
    (height, width).

    ``jax.image.resize(..., "linear", antialias=True)``: downsampling averages
    over each output pixel's footprint instead of sampling it. Axes already at
    ``size`` are left as they are.
    """
    batch = np.asarray(batch, np.float32)
    hw = (size, size) if np.ndim(size) == 0 else tuple(size)
    return np.asarray(jax.image.resize(batch, (batch.shape[0], *hw, *batch.shape[3:]), "linear",
                                       antialias=True))


def to_model_input(images, size, channels: int) -> np.ndarray:
    """Display-frame images (N, S, S, C) in [0, 1] -> a network's input (N, size, size, channels), or (N, H, W,
    channels) for ``size`` (H, W) (a square face squeezed to the network's aspect, as its maps are stretched
    back)."""
    return resize(display.grayscale(images) if channels == 1 else images, size)


def mean_faces(stimuli_dir, filenames, pairs, trials, size: int) -> list:
    """Mean grayscale face (size, size) uint8 of each ordered (true, foil) pair's stimuli, in ``pairs`` order."""
    pair_of = trials.drop_duplicates("filename").set_index("filename")[["true", "foil"]]
    pair_of = {n: (int(t), int(f)) for n, t, f in pair_of.itertuples()}
    faces = []
    for true, foil in pairs:
        stack = []
        for name in (f for f in filenames if pair_of[f] == (true, foil)):
            path = Path(stimuli_dir) / name
            try:
                with Image.open(path) as im:
                    stack.append(np.asarray(im.convert("L").resize((size, size), Image.Resampling.BILINEAR), float))
            except OSError as err:
                raise InputError(path, None, f"cannot read stimulus image ({err})",
                                 "--stimuli must hold the images the logs name") from None
        faces.append(np.round(np.mean(stack, axis=0)).astype(np.uint8))
    return faces


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize one uint8 image (H, W) or (H, W, C) to (size, size[, C]) with Pillow's bilinear filter."""
    image = np.asarray(image)
    squeeze = image.ndim == 3 and image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0] if squeeze else image)
    out = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
    return out[..., None] if squeeze else out


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of boolean masks (..., h, w) to (..., size, size).

    Each output pixel takes the mask value at the input pixel containing its
    centre, so the masks stay aligned with a bilinearly resized image.
    """
    masks = np.asarray(masks, bool)
    h, w = masks.shape[-2:]
    rows = np.minimum(((np.arange(size) + 0.5) * h / size).astype(int), h - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * w / size).astype(int), w - 1)
    return masks[..., rows[:, None], cols[None, :]]
