"""Make any network's convolutions take ferjax's fast input-gradient rules.

:mod:`ferjax.networks.conv` gives the networks of :mod:`ferjax.networks.cnn` convolutions
whose input gradient is a forward convolution (XLA:CPU's own transposed
convolution ran ~6x slower inside Extremal Perturbation's loop).
:func:`fast_gradients` carries that over to a network ferjax did not build:
it traces the function to a jaxpr and evaluates it again with every 2-D
``conv_general_dilated`` replaced:

* a dense convolution in any layout (NCHW/OIHW from PyTorch, NHWC/HWIO from
  Flax and Keras) is transposed to NHWC/HWIO around ferjax's rule; XLA folds
  the transposes of consecutive layers into one another;
* a depthwise convolution (``feature_group_count`` = input channels, as in
  Keras' SeparableConv2D and MobileNets) becomes a sum over the k_h k_w taps
  of shifted, strided slices times the tap's per-channel weights:
  ``y[n, i, j, c m] = sum_{a,b} x_pad[n, s i + a, s j + b, c] w[a, b, c m]``,
  elementwise work that XLA:CPU runs ~30x faster than its grouped convolution,
  forward and backward;
* anything else (dilated or grouped kernels, transposed convolutions, other
  element types) stays as it was.

Every other operation is re-bound unchanged (nested ``jit`` calls are
inlined), so the result is the same function: the tests compare outputs and
gradients with the original.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core

from ferjax.networks import conv

_CALLS = ("pjit", "jit", "closed_call", "core_call")


def fast_gradients(fn):
    """``fn(*args)`` with the same outputs, its 2-D convolutions rewritten (module docstring)."""
    @functools.wraps(fn)
    def wrapped(*args):
        closed, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        out = _eval(closed.jaxpr, closed.consts, *jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(shape), out)
    return wrapped


def count(fn, *args) -> dict:
    """How many convolutions of ``fn`` at ``args`` each rule takes: ``{"dense": n, "depthwise": n, "kept": n}``."""
    tally = {"dense": 0, "depthwise": 0, "kept": 0}

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive is core.primitives.conv_general_dilated_p:
                tally[_kind(eqn.invars[0].aval.shape, eqn.invars[1].aval.shape, **eqn.params)] += 1
            for sub in core.jaxprs_in_params(eqn.params):
                walk(sub)
    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return tally


def _eval(jaxpr, consts, *args):
    env = {}

    def read(v):
        return v.val if isinstance(v, core.Literal) else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        if eqn.primitive is core.primitives.conv_general_dilated_p:
            outs = [_convolve(*invals, **eqn.params)]
        elif eqn.primitive.name in _CALLS and isinstance(eqn.params.get("jaxpr"), core.ClosedJaxpr):
            sub = eqn.params["jaxpr"]
            outs = _eval(sub.jaxpr, sub.consts, *invals)
        else:
            outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
            if not eqn.primitive.multiple_results:
                outs = [outs]
        for v, x in zip(eqn.outvars, outs):
            env[v] = x
    return [read(v) for v in jaxpr.outvars]


def _kind(lhs_shape, rhs_shape, *, window_strides, lhs_dilation, rhs_dilation, dimension_numbers,
          feature_group_count, batch_group_count, preferred_element_type, **_):
    """Which rule a convolution takes: "dense", "depthwise" or "kept"."""
    ones = (1,) * len(window_strides)
    if (len(lhs_shape) != 4 or tuple(lhs_dilation) != ones or tuple(rhs_dilation) != ones
            or batch_group_count != 1 or preferred_element_type is not None):
        return "kept"
    if feature_group_count == 1:
        return "dense"
    channels = lhs_shape[dimension_numbers.lhs_spec[1]]
    return "depthwise" if feature_group_count == channels else "kept"


def _convolve(lhs, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
              feature_group_count, batch_group_count, precision, preferred_element_type, **rest):
    kind = _kind(lhs.shape, rhs.shape, window_strides=window_strides, lhs_dilation=lhs_dilation,
                 rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                 feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                 preferred_element_type=preferred_element_type)
    if kind == "kept" or any(v is not None for v in rest.values()):   # e.g. an explicit out_sharding
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                        feature_group_count=feature_group_count,
                                        batch_group_count=batch_group_count, precision=precision,
                                        preferred_element_type=preferred_element_type, **rest)
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    x = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))            # NHWC
    w = jnp.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))            # HWIO
    pads = tuple(tuple(int(v) for v in p) for p in padding)
    if kind == "dense":
        y = conv.conv_general_dilated(x, w, tuple(window_strides), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=precision)
    else:
        y = _depthwise(x, w, tuple(window_strides), pads, precision)
    back = np.argsort((out_spec[0], *out_spec[2:], out_spec[1]))
    return jnp.transpose(y, back)


def _depthwise(x, w, strides, pads, precision):
    """Depthwise convolution as a sum of shifted strided slices: x (N, H, W, C), w (kh, kw, 1, C M)."""
    (kh, kw, _, out), (sh, sw), c = w.shape, strides, x.shape[-1]
    mult = out // c
    xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    oh = (xp.shape[1] - kh) // sh + 1
    ow = (xp.shape[2] - kw) // sw + 1
    if mult > 1:   # output channel c m + k reads input channel c
        xp = jnp.repeat(xp, mult, axis=-1)
    taps = w[:, :, 0, :].astype(x.dtype)
    y = None
    for a in range(kh):
        for b in range(kw):
            part = xp[:, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw, :] * taps[a, b]
            y = part if y is None else y + part
    return y
