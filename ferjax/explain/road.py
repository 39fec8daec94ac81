"""ROAD, RemOve And Debias (Rong, Leemann, Borisov, Kasneci & Kasneci, ICML 2022), in JAX.

As pytorch-grad-cam 1.5.7's ``ROADMostRelevantFirst(p)`` / ``ROADLeastRelevantFirst(p)`` compute it,
for a saliency map s (H, W) in [0, 1] and a percentile p:

* **which pixels go** -- MoRF: thr = percentile(s, p) (numpy's "linear" method, in float32),
  the pixels with s >= thr are removed: about (100 - p)% of them, the most salient (a tie at
  the threshold goes too; a map that is 0 on most pixels loses every pixel at small p). LeRF:
  the same rule on 1 - s removes about (100 - p)%, the least salient;
* **what replaces them** -- noisy linear imputation: each removed pixel i takes the weighted
  mean of its in-frame 8-neighbours j, w_ij = 1/6 for edge and 1/12 for diagonal neighbours,
  all removed pixels solved jointly,
      (sum_j w_ij) x_i - sum_{j removed} w_ij x_j = sum_{j kept} w_ij x_j,
  then x_i += noise * N(0, 1) per channel. pytorch-grad-cam adds 0.01 to the network's
  normalised input; here ``noise`` is in the units of the images given (ferjax's [0, 1]), so
  0.01 / std is its equivalent. The system is solved matrix-free on the full grid by
  Jacobi-preconditioned conjugate gradients, A u = m (s u - conv3(m u)) with m the removed
  pixels and s = conv3(1), to a relative residual of ``tol`` or ``iters`` iterations (default 4
  max(H, W); the issue-25 research measured <= 8e-5 from scipy's direct solve at 128 px, 90%
  removed). With every pixel removed the system is singular; CG from 0 then returns 0, as
  scipy's spsolve does in pytorch-grad-cam;
* **the score** -- target(network(imputed)) - target(network(image)) (``return_diff=True``),
  the target's logit (``ClassifierOutputTarget``), softmax probability
  (``ClassifierOutputSoftmaxTarget``) or 2AFC quantities for (true, foil) targets
  (:func:`ferjax.explain.faithfulness.target_score`).

Lower MoRF (the score falls when the salient pixels go) and higher LeRF mean a more faithful
map; ROADCombined = (mean LeRF - mean MoRF) / 2 over the percentiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

STENCIL = np.array([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], np.float32)


def conv3(x):
    """Zero-padded 3 x 3 correlation of (..., H, W) with the imputation weights (centre 0)."""
    h, w = x.shape[-2:]
    p = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)])
    return sum(float(STENCIL[dy, dx]) * p[..., dy:dy + h, dx:dx + w]
               for dy in range(3) for dx in range(3) if STENCIL[dy, dx])


def percentile(values, q):
    """numpy.percentile(values, q), method "linear", on a flat float32 array: v[lo] + (v[hi] - v[lo]) g,
    or v[hi] - (v[hi] - v[lo]) (1 - g) when g >= 0.5 (numpy's own lerp, so float32 thresholds agree)."""
    v = jnp.sort(values.ravel())
    n = v.shape[0]
    idx = jnp.asarray(q, jnp.float32) / 100.0 * (n - 1)
    lo = jnp.clip(jnp.floor(idx).astype(jnp.int32), 0, n - 1)
    hi = jnp.clip(lo + 1, 0, n - 1)
    g = (idx - lo).astype(v.dtype)
    a, b = v[lo], v[hi]
    return jnp.where(g >= 0.5, b - (b - a) * (1 - g), a + (b - a) * g)


def keep_mask(saliency, percentiles, order: str = "morf"):
    """(H, W) saliency, (P,) percentiles -> (P, H, W) bool, True where a pixel stays."""
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    s = saliency.astype(jnp.float32)
    s = 1 - s if order == "lerf" else s          # pytorch-grad-cam's LeRF ranks 1 - s
    thr = jax.vmap(lambda q: percentile(s, q))(jnp.asarray(percentiles, jnp.float32))
    return s[None] < thr[:, None, None]


def impute(image, keep, *, iters: int | None = None, tol: float = 1e-6):
    """Linear imputation without noise: (H, W, C) image, (H, W) keep -> (H, W, C), kept pixels unchanged."""
    h, w = keep.shape
    iters = 4 * max(h, w) if iters is None else iters
    x = jnp.moveaxis(image.astype(jnp.float32), -1, 0)                  # (C, H, W): C independent systems
    k = keep.astype(jnp.float32)
    m = 1.0 - k
    s = conv3(jnp.ones_like(k))
    b = m * conv3(x * k)
    bnorm = jnp.sqrt(jnp.sum(b * b)) + 1e-30

    def apply(u):
        return m * (s * u - conv3(m * u))

    def body(state):
        i, u, r, z, p = state
        ap = apply(p)
        rz = jnp.sum(r * z, axis=(1, 2), keepdims=True)
        alpha = rz / jnp.maximum(jnp.sum(p * ap, axis=(1, 2), keepdims=True), 1e-30)
        u, r = u + alpha * p, r - alpha * ap
        z_new = m * r / s
        beta = jnp.sum(r * z_new, axis=(1, 2), keepdims=True) / jnp.maximum(rz, 1e-30)
        return i + 1, u, r, z_new, z_new + beta * p

    def going(state):
        return (state[0] < iters) & (jnp.sqrt(jnp.sum(state[2] ** 2)) > tol * bnorm)

    z0 = m * b / s
    _, u, *_ = lax.while_loop(going, body, (0, jnp.zeros_like(x), b, z0, z0))
    return jnp.moveaxis(k * x + m * u, 0, -1)


def perturbed(images, saliency, percentiles, key, *, order: str = "morf", noise: float = 0.0,
              iters: int | None = None, tol: float = 1e-6):
    """(N, H, W, C) images, (N, H, W) maps -> (N, P, H, W, C) imputed images with noise on removed pixels."""
    keep = jax.vmap(lambda s: keep_mask(s, percentiles, order))(saliency)                  # (N, P, H, W)
    filled = jax.vmap(jax.vmap(lambda x, k: impute(x, k, iters=iters, tol=tol), (None, 0)))(images, keep)
    eps = jax.random.normal(key, filled.shape, filled.dtype)
    return filled + noise * eps * (~keep)[..., None]
