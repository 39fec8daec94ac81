"""Ranks and correlation: the one definition every comparison in ferjax uses.

* :func:`ranks` gives each value's position along the last axis: the
  *ordinal* rank (0-based, ties broken by index; top-k Dice keeps the pixels
  of ordinal rank < k) and the *average* rank (1-based, tied values share the
  mean of their positions, as ``scipy.stats.rankdata(method="average")``).
* :func:`pearson` is Pearson's r, optionally under item weights (a bootstrap
  resample is a weight vector of counts).
* :func:`spearman` is Pearson's r of the average ranks (``scipy.stats.spearmanr``).

Each works on NumPy arrays on the host, in their own precision (float64 for
exact statistics), and on JAX arrays inside ``jit``. The two paths compute
the same quantities with the same arithmetic; :func:`ranks` sorts NumPy
arrays with NumPy's SIMD sort, which on a CPU is about 30x faster than
XLA:CPU's sort (0.03 s against 1.0 s for 280 maps of 128 x 128).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _is_jax(*arrays) -> bool:
    return any(isinstance(a, jax.Array) for a in arrays)


def ranks(x, *, descending: bool = True):
    """``(ordinal, average)`` ranks of x (..., N) along the last axis, each (..., N).

    ordinal: 0 for the first value in the order (the largest when
    ``descending``), ties in index order (a stable sort): int32.
    average: 1-based position in the same order, tied values sharing the mean
    of their positions: float32. With ``descending=False`` the order is
    ascending. Spearman's rho is the same for either direction.
    """
    if _is_jax(x):
        return _ranks_jax(x, descending)
    return _ranks_numpy(np.asarray(x, np.float32), descending)


def _ranks_jax(x, descending):
    key = -x if descending else x
    order = jnp.argsort(key, axis=-1, stable=True)
    flat = order.reshape(-1, order.shape[-1])
    # the inverse permutation, scattered instead of sorted a second time
    ordinal = jax.vmap(lambda o: jnp.zeros_like(o).at[o].set(jnp.arange(o.shape[0], dtype=o.dtype)))(flat)
    srt = jnp.sort(key, axis=-1)
    count = lambda side: jnp.vectorize(  # noqa: E731
        lambda s, v: jnp.searchsorted(s, v, side=side), signature="(n),(n)->(n)")(srt, key)
    average = (count("left") + count("right") + 1).astype(x.dtype) / 2
    return ordinal.reshape(order.shape).astype(jnp.int32), average


def _ranks_numpy(x, descending):
    shape = x.shape
    x = np.ascontiguousarray(x).reshape(-1, shape[-1]) + np.float32(0)  # -0.0 -> +0.0
    m, n = x.shape
    bits = x.view(np.uint32)
    # the float's bits as an order-preserving unsigned key, complemented for a descending order,
    # with the pixel index packed below it: one sort gives the stable order
    key = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))
    key = ~key if descending else key
    packed = (key.astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    packed.sort(axis=-1)
    order = (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)
    value = (packed >> np.uint64(32)).astype(np.uint32)
    idx = np.arange(n, dtype=np.int32)
    change = value[:, 1:] != value[:, :-1]
    first = np.zeros((m, n), np.int32)
    first[:, 1:] = np.where(change, idx[1:], 0)
    np.maximum.accumulate(first, axis=1, out=first)
    last = np.full((m, n), n - 1, np.int32)
    last[:, :-1] = np.where(change, idx[:-1], n - 1)
    last = np.minimum.accumulate(last[:, ::-1], axis=1)[:, ::-1]
    ordinal, average = np.empty((m, n), np.int32), np.empty((m, n), np.float32)
    np.put_along_axis(ordinal, order, np.broadcast_to(idx, (m, n)), axis=1)
    np.put_along_axis(average, order, (first + last) * np.float32(0.5) + np.float32(1), axis=1)
    return ordinal.reshape(shape), average.reshape(shape)


def pearson(x, y, weights=None):
    """Pearson's r of x and y along the last axis, broadcast over the leading axes.

    r = sum w dx dy / sqrt(sum w dx^2 sum w dy^2), with dx = x - sum(w x) / sum(w)
    (unweighted: w = 1 and the plain mean). ``weights`` (..., N), e.g. bootstrap
    counts (B, N) for B resamples at once. nan where x or y is constant.
    JAX arrays stay in JAX (usable under ``jit``); NumPy arrays are computed
    with NumPy in their own dtype.
    """
    xp = jnp if _is_jax(x, y, weights) else np
    if weights is None:
        dx, dy = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
        return (dx * dy).sum(-1) / xp.sqrt((dx * dx).sum(-1) * (dy * dy).sum(-1))
    n = weights.sum(-1, keepdims=True)
    dx, dy = x - (weights * x).sum(-1, keepdims=True) / n, y - (weights * y).sum(-1, keepdims=True) / n
    return (weights * dx * dy).sum(-1) / xp.sqrt((weights * dx * dx).sum(-1) * (weights * dy * dy).sum(-1))


def spearman(x, y):
    """Spearman's rho along the last axis: :func:`pearson` of the average :func:`ranks` (ascending)."""
    return pearson(ranks(x, descending=False)[1], ranks(y, descending=False)[1])
