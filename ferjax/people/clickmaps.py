"""Human attention maps: click logs rasterized into reveal masks and per-image maps.

Trial t of image i has clicks (x_k, y_k), k = 1..K_t. Click k uncovers
  disk:  D_k = {(r, c) : (c - x_k)^2 + (r - y_k)^2 < radius^2}  (integer r, c)
  tile:  D_k = {(r, c) : cell(r, rows) = cell(y_k, rows), cell(c, cols) = cell(x_k, cols)},
         cell(v, n) = floor(v * n / size) for pixels and clicks alike, so a click always
         uncovers the cell it lies in (cell k starts at ceil(k size / n); = floor when n | size).
The trial's mask is M_t(r, c) = w(min{k : (r, c) in D_k}) (0 where no click
uncovered the pixel), with w(k) = 1 ("none"), 1/k ("inverse_order") or
exp(-rate (k - 1)) ("exponential"); a pixel keeps its FIRST uncovering click's
weight. The image map is H_i = sum_{t: image i} M_t (participants summed, not
normalised), optionally convolved with a Gaussian of ``sigma`` pixels
(:func:`ferjax.analysis.mapops.smooth`). The numeric core is jit-compiled,
vmapped over trials. The logs come from :mod:`ferjax.people.clicklogs`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ferjax.analysis import mapops


def _trial_mask(x, y, order, valid, n, radius, rate, *, size, reveal, grid, weighting):
    """One trial's mask (size, size) from its padded clicks x, y, order, valid: (K,)."""
    pix = jnp.arange(size)
    first = jnp.full((size, size), jnp.inf, jnp.float32)

    def body(k, first):
        if reveal == "disk":
            p = pix.astype(jnp.float32)
            hit = (p[None, :] - x[k]) ** 2 + (p[:, None] - y[k]) ** 2 < radius**2
        else:
            (rows, cols), cell = grid, lambda v, m: jnp.floor(v * m / size).astype(jnp.int32)
            hit = (((pix * rows) // size == cell(y[k], rows))[:, None]
                   & ((pix * cols) // size == cell(x[k], cols))[None, :])
        return jnp.where(hit & valid[k], jnp.minimum(first, order[k]), first)

    first = jax.lax.fori_loop(0, n, body, first)
    w = {"none": lambda f: jnp.ones_like(f), "inverse_order": lambda f: 1.0 / f,
         "exponential": lambda f: jnp.exp(-rate * (f - 1.0))}[weighting](jnp.where(jnp.isfinite(first), first, 1.0))
    return jnp.where(jnp.isfinite(first), w, 0.0)


_STATIC = ("size", "reveal", "grid", "weighting")


@partial(jax.jit, static_argnames=_STATIC)
def _masks(xs, ys, orders, valid, counts, radius, rate, **static):
    """Masks (T, size, size) of T trials, vmapped; inputs (T, K) and counts (T,)."""
    return jax.vmap(partial(_trial_mask, radius=radius, rate=rate, **static))(xs, ys, orders, valid, counts)


@partial(jax.jit, static_argnames=_STATIC)
def _add_chunk(maps, idx, xs, ys, orders, valid, counts, radius, rate, **static):
    return maps.at[idx].add(_masks(xs, ys, orders, valid, counts, radius, rate, **static))



def _setup(trials, clicks, size=256, reveal="disk", radius=15.0, grid=None, which="all",
           weighting="none", rate=0.5, sigma=0.0):
    """Check options; select trials; pad clicks to (T, K) -> (trials, arrays, static, dynamic)."""
    if reveal not in ("disk", "tile") or which not in ("all", "correct") or \
            weighting not in ("none", "inverse_order", "exponential") or radius <= 0 or sigma < 0:
        raise ValueError("bad option: reveal disk|tile, which all|correct, weighting "
                         "none|inverse_order|exponential, radius > 0, sigma >= 0")
    if reveal == "tile" and (grid is None or len(grid) != 2 or not 0 < min(grid) <= max(grid) <= size):
        raise ValueError("reveal='tile' needs grid=(rows, cols) with 1 <= rows, cols <= size")
    sel = (trials[trials["correct"].to_numpy(bool)] if which == "correct" else trials).reset_index(drop=True)
    key = sel[["participant", "filename"]].assign(_t=np.arange(len(sel)))
    c = clicks.merge(key, on=["participant", "filename"]).sort_values(["_t", "order"], kind="stable")
    t, k = c["_t"].to_numpy(), c.groupby("_t").cumcount().to_numpy()
    K = int(k.max()) + 1 if len(k) else 1
    arrays = [np.zeros((len(sel) + 1, K), np.float32) for _ in range(3)] + [np.zeros((len(sel) + 1, K), bool)]
    for a, v in zip(arrays, (c["x"].to_numpy(), c["y"].to_numpy(), c["order"].to_numpy(), True)):
        a[t, k] = v
    counts = np.bincount(t, minlength=len(sel) + 1).astype(np.int32)  # last row: an empty trial
    static = {"size": size, "reveal": reveal, "grid": tuple(map(int, grid)) if reveal == "tile" else None,
              "weighting": weighting}
    return sel, arrays + [counts], static, (np.float32(radius), np.float32(rate))


def rasterize(trials, clicks, *, chunk: int = 64, **options):
    """Human maps -> ``(maps, filenames)``: float32 (N_images, size, size), sorted names.

    Options (module docstring has the equations): ``size=256``,
    ``reveal='disk'|'tile'``, ``radius=15`` (disk), ``grid=(rows, cols)`` (tile),
    ``which='all'|'correct'`` (trials used), ``weighting='none'|'inverse_order'|
    'exponential'`` with ``rate=0.5`` (w(k) = exp(-rate (k-1))), ``sigma=0``
    (Gaussian smoothing, zero padding outside the frame, truncated at 4 sigma).
    Every image with a trial gets a map. Trials go through a jit-compiled vmap in
    chunks of ``chunk`` (the last one padded), so memory stays bounded.
    """
    sel, arrays, static, dyn = _setup(trials, clicks, **options)
    filenames = sorted(trials["filename"].unique())
    idx = pd.Index(filenames).get_indexer(sel["filename"])
    order = np.argsort(-arrays[-1][:-1], kind="stable")  # similar click counts share a chunk
    maps = jnp.zeros((len(filenames), static["size"], static["size"]), jnp.float32)
    for start in range(0, len(sel), chunk):
        rows = np.full(chunk, len(sel))  # padding -> the empty trial
        rows[: len(order[start:start + chunk])] = order[start:start + chunk]
        maps = _add_chunk(maps, np.append(idx, 0)[rows], *(a[rows] for a in arrays), *dyn, **static)
    sigma = options.get("sigma", 0.0)
    return np.asarray(mapops.smooth(maps, mapops.gaussian_matrix(static["size"], sigma)) if sigma > 0 else maps), filenames


def trial_masks(trials, clicks, *, chunk: int = 64, **options):
    """Yield ``(rows, masks)`` chunk by chunk: each trial's own reveal mask, in ``trials`` order.

    ``rows`` (B,) indexes ``trials`` positionally and ``masks`` is float32
    (B, size, size) with B <= ``chunk``: the union of the trial's disks or
    tiles (weighted as ``weighting`` says, never smoothed). This is what the
    participant had uncovered when choosing (see :func:`ferjax.faces.display.seen`).
    """
    options = {k: v for k, v in options.items() if k not in ("which", "sigma")}
    sel, arrays, static, dyn = _setup(trials, clicks, which="all", **options)
    for start in range(0, len(sel), chunk):
        n = min(chunk, len(sel) - start)
        rows = np.full(chunk, len(sel))  # padding -> the empty trial, so shapes never change
        rows[:n] = np.arange(start, start + n)
        masks = _masks(*(a[rows] for a in arrays), *dyn, **static)
        yield np.arange(start, start + n), np.asarray(masks[:n])
