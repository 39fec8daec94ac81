"""Convolutions whose input gradient is itself a forward (HWIO) convolution.

Attribution needs the gradient of a network's output with respect to its
input on every step (GradCAM once, Extremal Perturbation on each of its
iterations), so networks built by :mod:`ferjax.networks.cnn` take their 2-D
convolutions from here. The forward pass and the kernel gradient are XLA's
own; only the input gradient is written out, in the one form XLA:CPU runs
fast, a stride-1 convolution over an HWIO kernel:

* **stride 1** (padding ``(lo, hi)`` and k taps per axis): ``dx = conv(g,
  W')`` with ``W'[k_h - 1 - i, k_w - 1 - j, o, c] = W[i, j, c, o]`` (flipped,
  in and out swapped) and padding ``(k - 1 - lo, k - 1 - hi)``. XLA's own transpose
  also swaps the kernel's in and out, and inside a compiled loop (EP's
  ``lax.scan``) it keeps that swap in the layout (``01oi``), which XLA:CPU
  runs ~6x slower than a forward pass of the same size: on EP's 64-px
  network its three such convolutions took over 40% of an iteration.
  With one input channel (grayscale), ``dx = sum_ij shift_ij(g . W[i, j])``
  instead: the per-tap contractions over the channels, shifted and added.
* **stride s**: XLA writes the transpose as a convolution over the gradient
  dilated by s (``lhs_dilation``), which multiplies mostly inserted zeros.
  Per axis, with ``x_pad`` the padded input, ``y[i] = sum_k x_pad[s i + k]
  W[k]``, so for ``n = s a + r`` (0 <= r < s) and taps ``k = s q + r``::

      dx_pad[s a + r] = sum_q g[a - q] W[s q + r]

  one dense stride-1 convolution of g with a ``ceil(k / s)``-tap kernel per
  phase r; the s^2 phases are its output channels, interleaved afterwards
  (depth to space) and cropped to x.

Two wrappers carry these rules:

* :func:`conv_general_dilated` (ferjax's own networks, :mod:`ferjax.networks.cnn`)
  is a ``jax.custom_vjp``: reverse mode only (``jax.grad``, ``jax.vjp``: all
  that training and attribution use), and it may sit under ``jax.vmap``
  (training's one network per class pair);
* :func:`fast_conv` (what :mod:`ferjax.networks.rewrite` puts in place of any
  network's convolutions) is a ``jax.custom_jvp`` whose tangent is
  ``dy = L_w(dx) + conv(x, dw)``, with ``L_w(t) = conv(t, w)`` a
  ``linear_call`` whose transpose is the input gradient above. Forward mode
  (``jax.jvp``) evaluates ``L_w`` as a plain convolution; reverse mode
  transposes it into the rule above; the kernel half is XLA's own, and with
  ``symbolic_zeros`` it is skipped when the kernel is not differentiated
  (GradCAM and EP differentiate the input only). ``linear_call`` has no
  batching rule in JAX, so a derivative of it cannot be vmapped: vmap first,
  then rewrite (``fast_gradients(jax.vmap(f))``), as ferjax's exporter does.

Both compute the same numbers: the gradients of the two are the same
functions of the same inputs.

For :mod:`ferjax.networks.rewrite`, :func:`kind` sorts any
``conv_general_dilated`` and :func:`convolve` computes a dense one in
NHWC/HWIO by :func:`fast_conv`. Depthwise ones (``feature_group_count`` =
input channels) keep XLA's own grouped convolution: with jax 0.10's XLA:CPU,
Extremal Perturbation at 224 px took 86 ms per iteration on MobileNetV3-Large
and 170 ms on EfficientNet-B0 with it, against 154 and 375 ms with the sum
of shifted slices that earlier versions put in its place, and compiled in
half the time (2 images, 2 cores of an AMD EPYC). GradCAM on a batch of 8
was slower with it (0.40 s against 0.16 s on MobileNetV3-Large), but one
EP runs hundreds of such passes (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero, linear_call

_NHWC = ("NHWC", "HWIO", "NHWC")


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
    """Drop-in for ``lax.conv_general_dilated`` (flax's ``conv_general_dilated=``).

    Undilated, ungrouped 2-D NHWC/HWIO convolutions get the input gradients of
    the module docstring; everything else (and paddings wider than the kernel,
    or negative) goes to ``lax.conv_general_dilated`` as is.
    """
    strides = tuple(window_strides)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}  # flax passes out_sharding=None
    plain = (feature_group_count != 1 or kwargs
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
    pads = tuple(tuple(int(v) for v in p) for p in padding)
    if any(not 0 <= v < k for p, k in zip(pads, rhs.shape[:2]) for v in p):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, dimension_numbers=dimension_numbers,
                                        precision=precision)
    return _conv(lhs, rhs, strides, pads, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, w, strides, pads, precision):
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC, precision=precision)


def _conv_fwd(x, w, strides, pads, precision):
    return _conv(x, w, strides, pads, precision), (x, w)


def _conv_bwd(strides, pads, precision, res, g):
    x, w = res
    _, w_vjp = jax.vjp(lambda w_: lax.conv_general_dilated(x, w_, strides, pads, dimension_numbers=_NHWC,
                                                           precision=precision), w)
    (dw,) = w_vjp(g)
    return _dx(x.shape, w, strides, pads, precision, g).astype(x.dtype), dw


def _dx(shape, w, strides, pads, precision, g):
    """The input gradient of a convolution of an input of ``shape`` (N, H, W, C), as forward convolutions."""
    if all(s == 1 for s in strides):
        return _dx_stride_1(shape, w, pads, precision, g)
    return _dx_sub_pixel(shape, w, strides, pads, precision, g)


def _dx_stride_1(shape, w, pads, precision, g):
    # dx[n] = sum_i g[n + lo - i] W[i] = sum_j g_pad[n + j] W[k - 1 - j], g padded by k - 1 - lo
    back = tuple((k - 1 - lo, k - 1 - hi) for (lo, hi), k in zip(pads, w.shape[:2]))
    kh, kw, cin = w.shape[:3]
    if cin == 1:
        # a network's first layer on grayscale: XLA:CPU's convolution to one output
        # channel runs far below its usual rate, so take the k_h k_w per-tap products
        # as one contraction over the channels and add up their shifted planes
        h, wd = shape[1:3]
        t = jnp.einsum("nyxc,ijc->nyxij", g, w[:, :, 0], precision=precision)
        t = jnp.pad(t, ((0, 0), back[0], back[1], (0, 0), (0, 0)))
        return sum(t[:, kh - 1 - i:kh - 1 - i + h, kw - 1 - j:kw - 1 - j + wd, i, j]
                   for i in range(kh) for j in range(kw))[..., None]
    wt = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    return lax.conv_general_dilated(g, wt, (1, 1), back, dimension_numbers=_NHWC, precision=precision)


def _dx_sub_pixel(shape, w, strides, pads, precision, g):
    (kh, kw), (sh, sw) = w.shape[:2], strides
    qh, qw = math.ceil(kh / sh), math.ceil(kw / sw)
    cin, cout = w.shape[2:]
    # V[q', p', cout, (r, t, cin)] = W[s (Q - 1 - q') + r, ...]: taps by phase, flipped
    v = jnp.pad(w, ((0, qh * sh - kh), (0, qw * sw - kw), (0, 0), (0, 0)))
    v = v.reshape(qh, sh, qw, sw, cin, cout)[::-1, :, ::-1]
    v = v.transpose(0, 2, 5, 1, 3, 4).reshape(qh, qw, cout, sh * sw * cin)
    n, h, wd = shape[:3]
    hp, wp = h + sum(pads[0]), wd + sum(pads[1])
    a, b = math.ceil(hp / sh), math.ceil(wp / sw)
    gp = jnp.pad(g, ((0, 0), (qh - 1, a - g.shape[1]), (qw - 1, b - g.shape[2]), (0, 0)))
    d = lax.conv_general_dilated(gp, v, (1, 1), "VALID", dimension_numbers=_NHWC, precision=precision)
    d = d.reshape(n, a, b, sh, sw, cin).transpose(0, 1, 3, 2, 4, 5).reshape(n, a * sh, b * sw, cin)
    return d[:, pads[0][0]:pads[0][0] + h, pads[1][0]:pads[1][0] + wd]


_conv.defvjp(_conv_fwd, _conv_bwd)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def fast_conv(x, w, strides, pads, precision=None):
    """NHWC/HWIO 2-D convolution with padding ``((lo, hi), (lo, hi))``, ``0 <= pad < kernel``: XLA's forward
    pass, the input gradient of the module docstring, and forward mode (``jax.jvp``) too."""
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC, precision=precision)


@functools.partial(fast_conv.defjvp, symbolic_zeros=True)
def _fast_conv_jvp(strides, pads, precision, primals, tangents):
    x, w = primals
    dx, dw = tangents
    shape, dtype = x.shape, x.dtype

    def forward(w_, t):      # L_w(t) = conv(t, w), linear in t
        return lax.conv_general_dilated(t, w_, strides, pads, dimension_numbers=_NHWC, precision=precision)

    def transpose(w_, g):    # L_w^T(g): the input gradient, as forward convolutions
        return _dx(shape, w_, strides, pads, precision, g).astype(dtype)

    y = fast_conv(x, w, strides, pads, precision)
    parts = [] if isinstance(dx, SymbolicZero) else [linear_call(forward, transpose, w, dx)]
    if not isinstance(dw, SymbolicZero):
        parts.append(lax.conv_general_dilated(x, dw, strides, pads, dimension_numbers=_NHWC, precision=precision))
    return y, sum(parts[1:], parts[0]) if parts else jnp.zeros_like(y)


def kind(lhs_shape, rhs_shape, *, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
         feature_group_count, batch_group_count, preferred_element_type, out_sharding=None, **_):
    """``(kind, why)`` of a ``conv_general_dilated`` (its operands' shapes and its params): "dense" (ungrouped,
    undilated, padding in ``[0, kernel)``: :func:`fast_conv`), "depthwise" (XLA's own grouped convolution is
    the fast rule: module docstring), or "kept" and the reason it stays XLA's."""
    ones = (1,) * len(window_strides)
    if len(lhs_shape) != 4:
        return "kept", f"{len(lhs_shape) - 2}-D convolution"
    if tuple(lhs_dilation) != ones:
        return "kept", f"transposed (lhs_dilation {tuple(lhs_dilation)})"
    if tuple(rhs_dilation) != ones:
        return "kept", f"dilated (rhs_dilation {tuple(rhs_dilation)})"
    if batch_group_count != 1 or preferred_element_type is not None or out_sharding is not None:
        return "kept", (f"batch_group_count {batch_group_count}, preferred_element_type "
                        f"{preferred_element_type}, out_sharding {out_sharding}")
    channels = lhs_shape[dimension_numbers.lhs_spec[1]]
    if feature_group_count == 1:
        kernel = [rhs_shape[d] for d in dimension_numbers.rhs_spec[2:]]
        if all(0 <= v < k for (lo, hi), k in zip(padding, kernel) for v in (lo, hi)):
            return "dense", ""
        return "kept", f"padding {tuple(map(tuple, padding))} outside [0, kernel {tuple(kernel)})"
    if feature_group_count == channels:
        return "depthwise", ""
    return "kept", f"grouped ({feature_group_count} groups of {channels // feature_group_count} channels)"


def convolve(lhs, rhs, *, window_strides, padding, dimension_numbers, precision, **_):
    """A "dense" convolution in any layout, computed in NHWC/HWIO by :func:`fast_conv`."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    x = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))            # NHWC
    w = jnp.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))            # HWIO
    pads = tuple(tuple(int(v) for v in p) for p in padding)
    y = fast_conv(x, w, tuple(window_strides), pads, precision)
    return jnp.transpose(y, np.argsort((out_spec[0], *out_spec[2:], out_spec[1])))
