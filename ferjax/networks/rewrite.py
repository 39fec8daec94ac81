"""Make any network's convolutions take ferjax's fast gradient rules, wherever they sit.

:mod:`ferjax.networks.conv` writes a convolution's input gradient as a forward
convolution (XLA:CPU's own transpose ran ~6x slower inside Extremal
Perturbation's loop). :func:`fast_gradients` carries that over to a network
ferjax did not build: it traces the function to a jaxpr and evaluates it again
with every 2-D ``conv_general_dilated`` replaced:

* **dense** (any layout: NCHW/OIHW from PyTorch, NHWC/HWIO from Flax and
  Keras): transposed to NHWC/HWIO around :func:`ferjax.networks.conv.fast_conv`
  (XLA folds the transposes of consecutive layers into one another);
* **depthwise** (``feature_group_count`` = input channels: MobileNets,
  EfficientNets, ConvNeXt, Keras' SeparableConv2D): counted, and left to
  XLA's own grouped convolution, which XLA:CPU now runs faster than the sum
  of shifted slices ferjax used to put in its place (:mod:`ferjax.networks.conv`);
* anything else (dilated or grouped kernels, transposed convolutions, other
  element types, paddings outside ``[0, kernel)``) stays XLA's, and one
  :class:`RewriteWarning` per trace names each such convolution and why.

The pass descends into every higher-order primitive and binds it again
through JAX's public API, so that JAX traces the rewritten body in its own
context (axis names, loop carries):

=========================================  ==============================================
primitive                                  rebound as
=========================================  ==============================================
``jit``, ``closed_call``, ``core_call``    inlined
``scan`` (and ``fori_loop``), ``while``    ``lax.scan``, ``lax.while_loop``
``cond``                                   ``lax.switch``
``remat2`` (``jax.checkpoint``)            ``jax.checkpoint`` with its policy
``shard_map``                              ``jax.shard_map`` with its mesh and specs
``custom_vjp_call``                        the primal rewritten; the user's bwd kept, and
                                           itself evaluated by this pass
=========================================  ==============================================

A ``custom_jvp`` function is left as it is: its derivative is its own rule,
and JAX inlines the primal of any custom rule nested in that rule when it
linearises it, so no rewrite can reach the rule's convolutions; each is
named in the warning. An equation with no convolution inside is bound
unchanged (``jax.nn.relu`` is a custom_jvp; ``jit`` boundaries stay).

:func:`count` is this same pass run abstractly (``jax.eval_shape``), so it
reports what :func:`fast_gradients` does. The result is the same function:
the tests compare outputs, gradients and ``jax.jvp`` with the original.
``fast_gradients`` must be the outermost transformation of the ones that
differentiate: ``jax.vmap`` of a derivative of a rewritten function fails
(``linear_call`` has no batching rule; :mod:`ferjax.networks.conv`).
"""

from __future__ import annotations

import functools
import warnings

import jax
from jax import lax
from jax.extend import core
from jax.extend import linear_util as lu

from ferjax.networks import conv

CONV = core.primitives.conv_general_dilated_p
_INLINE = ("jit", "pjit", "closed_call", "core_call", "call")
KINDS = ("dense", "depthwise", "kept")


class RewriteWarning(UserWarning):
    """Convolutions that keep XLA's own gradient, each with the reason."""


def fast_gradients(fn):
    """``fn(*args)`` with the same outputs, its 2-D convolutions rewritten (module docstring)."""
    @functools.wraps(fn)
    def wrapped(*args):
        return _Pass().run(fn, args)
    return wrapped


def count(fn, *args) -> dict:
    """How :func:`fast_gradients` treats the convolutions of ``fn`` at ``args``: ``{"dense": n, "depthwise": n,
    "kept": n}`` (a loop body's convolution counts once; a custom_vjp's primal counts, its bwd is rewritten
    when the gradient is taken)."""
    p = _Pass(warn=False)
    jax.eval_shape(lambda *a: p.run(fn, a), *args)
    return {kind: sum(k == kind for k in p.seen.values()) for kind in KINDS}


def _jaxprs(params):
    return core.jaxprs_in_params(params)


def _convs(params) -> int:
    """Convolutions inside an equation's sub-jaxprs, at any depth."""
    return sum((e.primitive is CONV) + _convs(e.params) for j in _jaxprs(params) for e in j.eqns)


def _closed(j):
    return (j.jaxpr, j.consts) if isinstance(j, core.ClosedJaxpr) else (j, ())


class _Pass:
    def __init__(self, warn=True):
        self.warn, self.path = warn, ()
        self.seen, self.kept = {}, {}   # (call path, id(eqn)) -> kind / why: a body traced twice counts once

    def run(self, fn, args):
        closed, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        out = self.eval(closed.jaxpr, closed.consts, *jax.tree.leaves(args))
        if self.kept and self.warn:
            warnings.warn(f"ferjax.networks.rewrite: {len(self.kept)} convolution(s) keep XLA's own gradient: "
                          + "; ".join(sorted(set(self.kept.values()))), RewriteWarning, stacklevel=3)
            self.kept = {}
        return jax.tree.unflatten(jax.tree.structure(shape), out)

    def eval(self, jaxpr, consts, *args):
        env = dict(zip(jaxpr.constvars, consts))
        env.update(zip(jaxpr.invars, args))
        read = lambda v: v.val if isinstance(v, core.Literal) else env[v]   # noqa: E731
        for eqn in jaxpr.eqns:
            env.update(zip(eqn.outvars, self.eqn(eqn, [read(v) for v in eqn.invars])))
        return [read(v) for v in jaxpr.outvars]

    def sub(self, eqn, jaxpr, consts=()):
        """A sub-jaxpr as a Python function evaluated by this pass (the call path extended by ``eqn``)."""
        def fn(*args):
            saved, self.path = self.path, self.path + (id(eqn),)
            try:
                return self.eval(jaxpr, consts, *args)
            finally:
                self.path = saved
        return fn

    def eqn(self, eqn, args):
        prim, params, name = eqn.primitive, eqn.params, eqn.primitive.name
        if prim is CONV:
            return [self.conv(eqn, *args, **params)]
        if not _convs(params):
            return _bind(eqn, args)
        if name in _INLINE:
            return self.sub(eqn, *_closed(params.get("jaxpr", params.get("call_jaxpr"))))(*args)
        if name == "scan":
            nc, nk = params["num_consts"], params["num_carry"]
            body = self.sub(eqn, *_closed(params["jaxpr"]))

            def step(carry, x):
                out = body(*args[:nc], *carry, *x)
                return out[:nk], out[nk:]
            carry, ys = lax.scan(step, list(args[nc:nc + nk]), list(args[nc + nk:]), length=params["length"],
                                 reverse=params["reverse"], unroll=params["unroll"])
            return [*carry, *ys]
        if name == "while":
            cn, bn = params["cond_nconsts"], params["body_nconsts"]
            cond, body = self.sub(eqn, *_closed(params["cond_jaxpr"])), self.sub(eqn, *_closed(params["body_jaxpr"]))
            return lax.while_loop(lambda c: cond(*args[:cn], *c)[0], lambda c: body(*args[cn:cn + bn], *c),
                                  list(args[cn + bn:]))
        if name == "cond":
            branches = [self.sub(eqn, *_closed(b)) for b in params["branches"]]
            return lax.switch(args[0], branches, *args[1:])
        if name == "remat2":
            body = self.sub(eqn, *_closed(params["jaxpr"]))
            return jax.checkpoint(body, prevent_cse=params["prevent_cse"], policy=params["policy"])(*args)
        if name == "shard_map":
            body = self.sub(eqn, *_closed(params["jaxpr"]))
            return list(jax.shard_map(lambda *a: tuple(body(*a)), mesh=params["mesh"],
                                      in_specs=tuple(params["in_specs"]), out_specs=tuple(params["out_specs"]),
                                      axis_names=set(params["newly_manual_axes"]),
                                      check_vma=params["check_vma"])(*args))
        if name == "custom_vjp_call":
            return self.custom_vjp(eqn, args)
        if name == "custom_jvp_call" and _is_fast_conv(eqn):   # rewritten before: the same again
            return self.sub(eqn, *_closed(params["call_jaxpr"]))(*args)
        why = ("in a custom_jvp function, whose own rule gives its derivative" if name == "custom_jvp_call"
               else f"inside {name!r}, which the rewrite does not enter")
        for sub in _jaxprs(params):
            self.keep_all(sub, why)
        return _bind(eqn, args)

    def keep_all(self, jaxpr, why):
        for e in jaxpr.eqns:
            if e.primitive is CONV:
                self.seen[(self.path, id(e))] = "kept"
                self.kept[(self.path, id(e))] = f"{why}: lhs {e.invars[0].aval.str_short()}"
            for sub in _jaxprs(e.params):
                self.keep_all(sub, why)

    def custom_vjp(self, eqn, args):
        bind = eqn.primitive.get_bind_params(eqn.params)
        primal, fwd, bwd = bind.pop("subfuns")
        body = self.sub(eqn, *_closed(eqn.params["call_jaxpr"]))
        if getattr(bwd, "f", None) is conv._conv_bwd:   # ferjax's own rule: fast_conv is the same, jvp-able
            return body(*args)
        if not eqn.params["symbolic_zeros"]:   # with symbolic zeros the bwd takes non-arrays: left as written
            bwd = lu.wrap_init(functools.partial(_fast_bwd, bwd, _Pass(self.warn)), debug_info=bwd.debug_info)
        primal = lu.wrap_init(body, debug_info=primal.debug_info)
        return eqn.primitive.bind(*args, subfuns=(primal, fwd, bwd), **bind)

    def conv(self, eqn, lhs, rhs, **params):
        kind, why = conv.kind(lhs.shape, rhs.shape, **params)
        key = (self.path, id(eqn))
        self.seen[key] = kind
        if kind == "kept":
            self.kept[key] = f"{why}: lhs {tuple(lhs.shape)}, rhs {tuple(rhs.shape)}"
        if kind == "dense":
            return conv.convolve(lhs, rhs, **params)
        return CONV.bind(lhs, rhs, **params)


def _is_fast_conv(eqn) -> bool:
    info = eqn.params["call_jaxpr"].jaxpr.debug_info
    return getattr(info, "func_src_info", "").startswith(f"fast_conv at {conv.__file__}:")


def _bind(eqn, args):
    out = eqn.primitive.bind(*args, **eqn.primitive.get_bind_params(eqn.params))
    return out if eqn.primitive.multiple_results else [out]


def _fast_bwd(bwd, p, *args):
    """A custom_vjp's bwd, evaluated by the pass: the convolutions it computes with (XLA's own transposes,
    if it calls ``jax.vjp``) take the rewritten forms. Outputs that are symbolic zeros pass through."""
    zeros = {}

    def arrays_only(*a):
        outs = bwd.call_wrapped(*a)
        zeros.update({i: o for i, o in enumerate(outs) if not hasattr(o, "shape")})
        return [o for o in outs if hasattr(o, "shape")]

    closed = jax.make_jaxpr(arrays_only)(*args)
    vals = iter(p.eval(closed.jaxpr, closed.consts, *args))
    return [zeros[i] if i in zeros else next(vals) for i in range(len(closed.out_avals) + len(zeros))]
