"""The pieces of Extremal Perturbation that act on images and masks (Fong, Patrick & Vedaldi, ICCV 2019).

As TorchRay builds them (``torchray.attribution.extremal_perturbation``):

* **Blur pyramid** (L = ``num_levels`` levels): ``P_l = g_{s_l} * x`` with
  ``s_l = max_blur (1 - l / (L - 1))`` (level L-1 is x itself), ``g_s`` the
  separable Gaussian ``exp(-i^2 / (sqrt(2) s + eps)^2)``, ``i in [-ceil(4s),
  ceil(4s)]``, normalised to sum 1, zero padding (applied as banded matrices).
* **Perturbed image**: ``x_m = (1 - f) P_k + f P_{min(k+1, L-1)}`` with
  ``m (L-1) = k + f``, k integer (m = 1 keeps x, m = 0 blurs it fully).
* **Mask generator**: parameters ``p`` on a grid of stride ``step`` (``ceil(H /
  step)`` x ``ceil(W / step)``), initialised to ones. Each output pixel u takes the
  smooth max over the (2r+1)^2 grid points j near it of ``p_j k(|u - c_j| / sigma)``
  with ``k(z) = exp(-2 max(z - 1/2, 0)^2)``, ``r = 1 + ceil(sigma / step)``;
  smooth max ``smax(v) = sum_j v_j softmax(20 v)_j`` (coldness 20); then clamp to
  [0, 1]. The mask is produced on a canvas padded by a margin of ``sigma``
  pixels on each side; the crop is the image-sized mask.
* **Area loss**: TorchRay's ``mean((sort(m) - r)^2)`` against the reference
  vector r of the target area, as a top-k sum found by a radix select
  (:func:`area_loss`).

The optimisation that uses them is :func:`ferjax.explain.perturbation.extremal_perturbation`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

COLDNESS = 20.0  # the smooth max's softmax coldness


def _gaussian_1d(sigma: np.float32) -> np.ndarray:
    """TorchRay's imsmooth kernel (float32 throughout)."""
    width = math.ceil(float(np.float32(4) * sigma))
    i = np.arange(-width, width + 1, dtype=np.float32)
    f = i / (np.float32(math.sqrt(2.0)) * sigma + np.float32(1.19209290e-07))
    f = np.exp(-f * f).astype(np.float32)
    return f / f.sum(dtype=np.float32)


def _blur_matrix(n: int, sigma) -> np.ndarray:
    """(n, n) float32 B with ``B @ x`` = the kernel's correlation along an axis of length n, zero padding."""
    filt = _gaussian_1d(sigma)
    w = (filt.shape[0] - 1) // 2
    d = np.arange(n)[None, :] - np.arange(n)[:, None]  # input index minus output index
    return np.where(np.abs(d) <= w, filt[np.clip(d + w, 0, 2 * w)], 0).astype(np.float32)


def _blur(image, sigma):
    """Separable Gaussian blur of one (H, W, C) image, zero padding, same size.

    Written as ``B_H x B_W^T`` with banded matrices instead of a convolution:
    at TorchRay's max_blur of 20 the kernel has 161 taps, and XLA:CPU's
    depthwise convolution with such a kernel took 17 ms per 64-px pyramid,
    the two matrix products take a fraction of a millisecond.
    """
    b_h, b_w = (jnp.asarray(_blur_matrix(n, sigma)) for n in image.shape[:2])
    return jnp.einsum("ij,jkc,lk->ilc", b_h, image, b_w, precision=lax.Precision.HIGHEST)


def pyramid(image, num_levels, max_blur, perturbation):
    """(L, H, W, C) perturbation pyramid; level L-1 is the image itself."""
    levels = np.linspace(0, 1, num_levels, dtype=np.float32)
    if perturbation == "blur":
        return jnp.stack([_blur(image, np.float32(1 - s) * np.float32(max_blur)) for s in levels])
    return jnp.stack([image * s for s in levels])  # "fade"


def perturb(pyramid, mask):
    """Perturbed image: linear interpolation in the pyramid at level mask * (L-1)."""
    num_levels = pyramid.shape[0]
    w = mask * (num_levels - 1)
    k = lax.stop_gradient(jnp.floor(w))
    w = (w - k)[..., None]
    k = k.astype(jnp.int32)
    hh, ww = jnp.meshgrid(jnp.arange(mask.shape[0]), jnp.arange(mask.shape[1]), indexing="ij")
    y0 = pyramid[k, hh, ww]
    y1 = pyramid[jnp.minimum(k + 1, num_levels - 1), hh, ww]
    return (1 - w) * y0 + w * y1


class MaskGenerator:
    """TorchRay's MaskGenerator: geometry, and its smooth max-convolution in block form.

    Output pixel ``u = step * i + s`` (per axis) takes the smooth max over the
    (2r+1)^2 grid points ``j`` of ``v_j = p_{i + j - pad} k_j(s)``. The kernel weight
    depends on ``j`` and the sub-position ``s`` only (not on ``i``): TorchRay's
    nearest upsampling maps u to grid cell ``floor(u / step)``. So the mask is
    computed on (J, S, S, h_mid, w_mid) blocks without gathers, then interleaved.
    """

    def __init__(self, shape, step, sigma):
        self.shape, self.step, self.sigma = tuple(shape), int(step), float(sigma)
        self.margin = self.sigma
        self.padding = 1 + math.ceil((self.margin + self.sigma) / step)
        self.radius = 1 + math.ceil(self.sigma / step)
        d = 2 * self.radius + 1
        self.shape_in = [math.ceil(z / step) for z in shape]
        self.shape_mid = [z + 2 * self.padding - d + 1 for z in self.shape_in]
        self.shape_up = [step * z for z in self.shape_mid]
        self.shape_out = [z - step + 1 for z in self.shape_up]
        if any(o < round(self.margin) + s for o, s in zip(self.shape_out, self.shape)):
            raise ValueError(f"unsupported mask geometry: step={step}, sigma={sigma}, shape={shape} (the smooth "
                             "mask would not cover the image; use a smaller step or a larger sigma)")
        for m, u, o in zip(self.shape_mid, self.shape_up, self.shape_out):
            # PyTorch's nearest-neighbour source index, in float32 as it computes it
            near = np.floor(np.arange(o, dtype=np.float32) * (np.float32(m) / np.float32(u)))
            if not np.array_equal(np.minimum(near.astype(np.int64), m - 1), np.arange(o) // step):
                raise ValueError(f"unsupported mask geometry: step={step}, sigma={sigma}, shape={shape}")
        # offset of pixel (s, t) in a cell from grid point j = (a, b):
        # s - margin + step * (padding - a)
        off = np.arange(step, dtype=np.float32)[None, :] - np.float32(self.margin) \
            + step * (self.padding - np.arange(d, dtype=np.float32))[:, None]       # (d, S)
        delta = np.sqrt(off[:, None, :, None] ** 2 + off[None, :, None, :] ** 2)  # (a, b, s, t)
        z = delta / np.float32(self.sigma)
        self.weight = np.exp(-2 * np.maximum(z - 0.5, 0) ** 2).astype(np.float32).reshape(d * d, step * step)

    def generate(self, p):
        """p (h_in, w_in) -> (cropped (H, W), full (H_out, W_out)) masks."""
        d, pad, step = 2 * self.radius + 1, self.padding, self.step
        mh, mw = self.shape_mid
        pp = jnp.pad(p, pad)
        patches = jnp.stack([pp[ky:ky + mh, kx:kx + mw] for ky in range(d) for kx in range(d)])
        m = _smooth_max(jnp.asarray(self.weight), patches.reshape(d * d, mh * mw))  # (S*S, L)
        m = m.reshape(step, step, mh, mw).transpose(2, 0, 3, 1).reshape(mh * step, mw * step)
        m = clamp01(m[:self.shape_out[0], :self.shape_out[1]])
        o = round(self.margin)
        return m[o:o + self.shape[0], o:o + self.shape[1]], m


@jax.custom_vjp
def _smooth_max(w, v):
    """``out[q, l] = sum_j m_j e_j / sum_j e_j``, ``m_j = w[j, q] v[j, l]``, ``e_j = exp(20 m_j)``.

    w (J, Q) kernel weights, v (J, L) mask values, both in [0, 1], so ``e_j <=
    e^20`` and no max needs subtracting in float32. The hand-written backward
    reuses the forward's ``e`` (J, Q, L) (one image at a time it stays in
    cache; recomputing it was a few % slower):
    ``d out / d m_j = e_j / Z (1 + 20 (m_j - out))``.
    """
    return _smooth_max_fwd(w, v)[0]


def _smooth_max_fwd(w, v):
    # m and e as whole (J, Q, L) arrays (one loop each, a small program that
    # compiles in half the time of J separate terms), the sums over j as
    # explicit slice sums: XLA:CPU then emits one vectorised elementwise loop
    # instead of a slow generic reduction
    m = w[:, :, None] * v[:, None, :]
    e = jnp.exp(COLDNESS * m)
    z = sum(e[j] for j in range(w.shape[0]))
    out = sum(m[j] * e[j] for j in range(w.shape[0])) / z
    return out, (w, v, z, out, e)


def _smooth_max_bwd(res, g):
    w, v, z, out, e = res
    m = w[:, :, None] * v[:, None, :]
    dm = (g / z) * e * (1 + COLDNESS * (m - out)) * w[:, :, None]
    # the sum over the Q sub-positions as explicit slices keeps it one elementwise loop
    return jnp.zeros_like(w), sum(dm[:, q] for q in range(w.shape[1]))


_smooth_max.defvjp(_smooth_max_fwd, _smooth_max_bwd)


def clamp01(x):
    """clamp to [0, 1] with PyTorch's gradient (passes where 0 <= x <= 1)."""
    return jnp.where(x < 0, 0.0, jnp.where(x > 1, 1.0, x))


def top_sum(x, k):
    """Sum of the k largest entries of non-negative x (flat), k >= 1 (traced ok).

    The k-th largest value tau comes from a radix select on the float32 bit
    patterns (order-preserving for x >= 0): 31 counting passes instead of a
    sort (the counts are float32 sums of ones, exact below 2^24 entries). The
    gradient is 1 on the entries above tau; the entries tied at tau share the
    remaining ``k - #above`` equally (the symmetric subgradient).
    """
    bits = lax.bitcast_convert_type(x + 0.0, jnp.int32)  # + 0.0 turns -0.0 into +0.0

    def bit(b, prefix):
        cand = prefix | (1 << (30 - b))
        return jnp.where(jnp.where(bits >= cand, 1.0, 0.0).sum() >= k, cand, prefix)

    # a loop, not unrolled: unrolled, XLA:CPU fused the mask generator's interleaving transpose into each of
    # the 31 passes and redid it there (40% of an iteration of EP's mask work on a 64-px face)
    tau = lax.bitcast_convert_type(lax.fori_loop(0, 31, bit, jnp.int32(0)), jnp.float32)
    above, tied = x > tau, x == tau
    # Ties matter: at TorchRay's start (p = 1) most mask pixels are exactly 1.
    # A sort hands the reference's ones to the tied pixels in its own order
    # (a stable sort: the last rows of the mask; PyTorch's CPU sort, which is
    # not stable, a scrambled order), which favours some image regions over
    # others. Sharing them evenly favours none, and on the FER network it
    # follows TorchRay's masks more closely than the stable order (Pearson
    # 0.95 against 0.83 over 24 stimuli).
    weight = above + tied * (k - above.sum()) / jnp.maximum(tied.sum(), 1)
    return (lax.stop_gradient(weight) * x).sum()


def area_loss(full, n_ones):
    """TorchRay's ``mean((sort(m) - r)^2)``, r = n0 zeros then ``n_ones`` ones.

    Equal to ``(sum m^2 - 2 * (sum of the n_ones largest m) + n_ones) / M``.
    """
    x = full.ravel()
    top = jnp.where(n_ones > 0, top_sum(x, jnp.maximum(n_ones, 1)), 0.0)
    return (jnp.sum(x * x) - 2 * top + n_ones) / x.size
