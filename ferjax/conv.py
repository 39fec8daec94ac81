"""Strided convolution whose input gradient is a dense (sub-pixel) convolution.

The gradient of ``y = conv(x, W, stride s)`` with respect to x is a transposed
convolution. XLA writes it as a convolution over the gradient dilated by s
(``lhs_dilation``), which on CPU multiplies mostly inserted zeros and, for
narrow layers, runs ~10x below the forward pass's speed. Attribution needs
exactly this gradient on every step (GradCAM, and each iteration of Extremal
Perturbation), so networks built by :mod:`ferjax.model` use this instead.

Per axis, with ``x_pad`` the padded input, ``y[i] = sum_k x_pad[s i + k] W[k]``,
so for ``n = s a + r`` (0 <= r < s) and taps ``k = s q + r``::

    dx_pad[s a + r] = sum_q g[a - q] W[s q + r]

one dense stride-1 convolution of g with a ``ceil(k / s)``-tap kernel per phase
r; the s^2 phases are its output channels, interleaved afterwards (depth to
space) and cropped to x. The forward pass and the kernel gradient are XLA's own.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
    """Drop-in for ``lax.conv_general_dilated`` (flax's ``conv_general_dilated=``).

    Strided, undilated, ungrouped 2-D NHWC/HWIO convolutions get the sub-pixel
    input gradient; everything else goes to ``lax.conv_general_dilated`` as is.
    """
    strides = tuple(window_strides)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}  # flax passes out_sharding=None
    plain = (all(s == 1 for s in strides) or feature_group_count != 1 or kwargs
             or any(d not in (None, 1) and tuple(d) != (1,) * len(strides)
                    for d in (lhs_dilation, rhs_dilation))
             or lhs.ndim != 4 or lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
             != lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
    if plain:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                        feature_group_count=feature_group_count, precision=precision,
                                        **kwargs)
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
    if any(v < 0 for p in padding for v in p):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, dimension_numbers=dimension_numbers,
                                        precision=precision)
    return _strided(lhs, rhs, strides, tuple(tuple(int(v) for v in p) for p in padding), precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _strided(x, w, strides, pads, precision):
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC, precision=precision)


def _strided_fwd(x, w, strides, pads, precision):
    return _strided(x, w, strides, pads, precision), (x, w)


def _strided_bwd(strides, pads, precision, res, g):
    x, w = res
    _, w_vjp = jax.vjp(lambda w_: lax.conv_general_dilated(x, w_, strides, pads, dimension_numbers=_NHWC,
                                                           precision=precision), w)
    (dw,) = w_vjp(g)
    (kh, kw), (sh, sw) = w.shape[:2], strides
    qh, qw = math.ceil(kh / sh), math.ceil(kw / sw)
    cin, cout = w.shape[2:]
    # V[q', p', cout, (r, t, cin)] = W[s (Q - 1 - q') + r, ...]: taps by phase, flipped
    v = jnp.pad(w, ((0, qh * sh - kh), (0, qw * sw - kw), (0, 0), (0, 0)))
    v = v.reshape(qh, sh, qw, sw, cin, cout)[::-1, :, ::-1]
    v = v.transpose(0, 2, 5, 1, 3, 4).reshape(qh, qw, cout, sh * sw * cin)
    n, h, wd = x.shape[:3]
    hp, wp = h + sum(pads[0]), wd + sum(pads[1])
    a, b = math.ceil(hp / sh), math.ceil(wp / sw)
    gp = jnp.pad(g, ((0, 0), (qh - 1, a - g.shape[1]), (qw - 1, b - g.shape[2]), (0, 0)))
    d = lax.conv_general_dilated(gp, v, (1, 1), "VALID", dimension_numbers=_NHWC, precision=precision)
    d = d.reshape(n, a, b, sh, sw, cin).transpose(0, 1, 3, 2, 4, 5).reshape(n, a * sh, b * sw, cin)
    dx = d[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + wd]
    return dx.astype(x.dtype), dw


_strided.defvjp(_strided_fwd, _strided_bwd)
