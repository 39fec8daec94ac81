"""Operations on attention maps (N, H, W): normalisation, smoothing, resizing, per-pair sums.

The human maps, the explanations and the baselines all pass through these
before they are compared, so each operation has one definition here:
min-max and sum-to-one normalisation, separable Gaussian smoothing,
antialiased bilinear resizing, and the reference study's per-pair maps
(Park & Wallraven 2021: each image map min-max normalised, then summed over
the five images of an ordered (true, foil) pair).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def smooth(maps, g):
    """Gaussian smoothing G M G^T of maps (..., S, S) with g = :func:`gaussian_matrix` (S, S); zero boundary."""
    return jnp.einsum("ij,...jk,lk->...il", g, maps, g, precision=jax.lax.Precision.HIGHEST)


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """(size, size) float32 G: row i holds the Gaussian of ``sigma`` pixels centred on i,
    truncated at 4 sigma and normalised, as ``scipy.ndimage.gaussian_filter`` (zero padding)."""
    r = int(4.0 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    d = np.arange(size)[None, :] - np.arange(size)[:, None]
    return np.where(np.abs(d) <= r, (k / k.sum())[np.clip(d + r, 0, 2 * r)], 0.0).astype(np.float32)


def resize(maps, size: int) -> np.ndarray:
    """Antialiased bilinear resize of a batch (N, H, W, ...) to (N, size, size, ...), float32.

    ``jax.image.resize(..., "linear", antialias=True)``: downsampling averages
    over the footprint of each output pixel instead of sampling it. Maps
    already at ``size`` are returned unchanged.
    """
    maps = np.asarray(maps, np.float32)
    if maps.shape[1:3] == (size, size):
        return maps
    return np.asarray(jax.image.resize(maps, (maps.shape[0], size, size, *maps.shape[3:]), "linear",
                                       antialias=True))


def minmax(maps) -> np.ndarray:
    """(x - min) / (max - min) per map over the last two axes; a constant map -> zeros."""
    m = np.asarray(maps, np.float32)
    lo, hi = m.min(axis=(-2, -1), keepdims=True), m.max(axis=(-2, -1), keepdims=True)
    return np.where(hi > lo, (m - lo) / np.where(hi > lo, hi - lo, 1), 0).astype(np.float32)


def to_distribution(maps) -> np.ndarray:
    """Non-negative maps scaled to sum to 1 per map; an all-zero map -> uniform."""
    m = np.asarray(maps, np.float64)
    if (m < 0).any():
        raise ValueError("to_distribution needs non-negative maps")
    s = m.sum(axis=(-2, -1), keepdims=True)
    return np.where(s > 0, m / np.where(s > 0, s, 1), 1.0 / (m.shape[-1] * m.shape[-2])).astype(np.float32)


def pair_maps(maps, filenames, trials, *, normalize: bool = True):
    """Per ordered (true, foil) pair: sum of its images' maps -> ``(maps (P, H, W), pairs (P, 2))``.

    As the reference did, each image map is min-max normalised first
    (``normalize=False`` sums raw maps). Pairs are sorted by (true, foil).
    """
    info = trials[["filename", "true", "foil"]].drop_duplicates()
    if info["filename"].duplicated().any():
        raise ValueError("an image appears with more than one (true, foil) pair")
    info = info.set_index("filename").reindex(list(filenames))
    if info.isna().any().any():
        raise ValueError("some filenames have no trial")
    pairs, inv = np.unique(info.to_numpy(np.int64), axis=0, return_inverse=True)
    out = np.zeros((len(pairs),) + np.shape(maps)[1:], np.float32)
    np.add.at(out, inv.ravel(), minmax(maps) if normalize else np.asarray(maps, np.float32))
    return out, pairs
