"""How reliable are the human maps? Split-half agreement between random halves of the people.

This is the noise ceiling for comparing models with people (Harmonization,
Fel et al. NeurIPS 2022): no model map can agree with the people's maps
better than the people's maps agree with themselves.
"""

from __future__ import annotations

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ferjax.analysis import correlation, mapops
from ferjax.people.clickmaps import _masks, _setup


def _half_maps(masks, halves):
    """masks (B, P, H, W), halves (2, S, P) 0/1 -> the two halves' summed maps (2, S, B, H, W)."""
    return jnp.einsum("hsp,bpxy->hsbxy", halves, masks, precision=jax.lax.Precision.HIGHEST)


@jax.jit
def _half_ranks(masks, halves, g):
    """masks (B, P, H, W), halves (2, S, P) 0/1 -> the average ranks (2, S, B, H*W) of the half maps."""
    m = _half_maps(masks, halves)
    v = (mapops.smooth(m, g) if g is not None else m).reshape(m.shape[:3] + (-1,))
    return correlation.ranks(v, descending=False)[1]


@partial(jax.jit, static_argnames="bins")
def _half_tables(masks, halves, bins):
    """masks (B, P, H, W) 0/1, halves (2, S, P) 0/1 -> (S, B, bins, bins) joint counts of the half maps' values.

    Unweighted, unsmoothed half maps hold the integers 0..bins-1 (how many of
    the half's participants uncovered a pixel), so two maps are summed up
    exactly by the table of how many pixels take each pair of values.
    """
    m = _half_maps(masks, halves)
    a, b = jnp.round(m).astype(jnp.int32).reshape(2, -1, m.shape[-2] * m.shape[-1])
    t = jax.vmap(partial(jnp.bincount, length=bins * bins))(a * bins + b)
    return t.reshape(*m.shape[1:3], bins, bins)


def _table_spearman(t):
    """Spearman rho from joint counts t (..., K, K) of two integer maps (average ranks for ties); nan if constant.

    With n_k pixels of value k, value k's average rank is N_{<k} + (n_k + 1) / 2;
    rho = sum_ab t_ab ra_a rb_b / sqrt(sum_a n_a ra_a^2 sum_b n_b rb_b^2) with
    the ranks centred on their mean (N + 1) / 2. Exact in float64.
    """
    t = np.asarray(t, np.float64)

    def centred(n):
        return np.cumsum(n, -1) - n + (n + 1) / 2 - (n.sum(-1, keepdims=True) + 1) / 2

    na, nb = t.sum(-1), t.sum(-2)
    ra, rb = centred(na), centred(nb)
    cov = np.einsum("...ij,...i,...j->...", t, ra, rb)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt((na * ra * ra).sum(-1) * (nb * rb * rb).sum(-1))


def split_half(trials, clicks, *, n_splits: int = 50, seed: int = 0, chunk: int = 64, **options) -> dict:
    """Split-half reliability of the human maps (same ``options`` as rasterize).

    Each split puts a random half of the participants (``default_rng(seed)``;
    floor(P/2) vs the rest) in A. Per image, Spearman rho between A's and B's
    maps (images where a half map is constant are skipped); r = mean over
    images; r_sb = 2r / (1 + r). Returns {'mean', 'std' (ddof 0), 'values'
    (r_sb per split), 'raw' (r per split)}. Masks are computed once per image
    batch and summed into every split's halves.
    """
    sel, arrays, static, dyn = _setup(trials, clicks, **options)
    people, names = sorted(trials["participant"].unique()), sorted(trials["filename"].unique())
    if len(people) < 2:
        raise ValueError("split_half needs at least 2 participants")
    slot = np.full((len(names), len(people)), len(sel))  # -> the empty trial
    image, person = pd.Index(names).get_indexer(sel["filename"]), pd.Index(people).get_indexer(sel["participant"])
    slot[image, person] = np.arange(len(sel))
    if (np.bincount(slot.ravel(), minlength=len(sel) + 1)[:-1] != 1).any():
        raise ValueError("a participant has two trials of one image")
    rng, halves = np.random.default_rng(seed), np.zeros((2, n_splits, len(people)), np.float32)
    for s in range(n_splits):
        perm = rng.permutation(len(people))
        halves[0, s, perm[: len(people) // 2]], halves[1, s, perm[len(people) // 2:]] = 1, 1
    sigma, batch = options.get("sigma", 0.0), max(1, chunk // len(people))
    g = mapops.gaussian_matrix(static["size"], sigma) if sigma > 0 else None
    bins = len(people) + 1 if g is None and static["weighting"] == "none" else None  # integer maps
    rho = np.full((n_splits, len(names)), np.nan)
    for start in range(0, len(names), batch):
        rows = np.full((batch, len(people)), len(sel))
        rows[: len(slot[start:start + batch])] = slot[start:start + batch]
        m = _masks(*(a[rows.ravel()] for a in arrays), *dyn, **static).reshape(rows.shape + (static["size"],) * 2)
        if bins:
            r = _table_spearman(_half_tables(m, halves, bins))
        else:
            ra, rb = np.asarray(_half_ranks(m, halves, g), np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = correlation.pearson(ra, rb)
        rho[:, start:start + batch] = r[:, : len(names) - start]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = np.nanmean(rho, axis=1)
    sb = 2 * raw / (1 + raw)
    return {"mean": float(np.mean(sb)), "std": float(np.std(sb)), "values": sb, "raw": raw}
