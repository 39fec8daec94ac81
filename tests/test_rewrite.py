"""ferjax.networks.rewrite: every convolution rewritten wherever it sits, or named; count() is the same pass.

Each case computes the same function as the original (outputs, gradients,
``jax.jvp``); the gradient's jaxpr shows which rule computed each input
gradient: XLA's own transpose of a convolution is a convolution over a
kernel with its in and out swapped (stride 1) or over a dilated gradient
(``lhs_dilation``, stride s); ferjax's rules are forward NHWC/HWIO
convolutions.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend import core
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from ferjax.networks import rewrite

NHWC = ("NHWC", "HWIO", "NHWC")
FORWARD = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), NHWC)
rng = np.random.default_rng(0)
W = jnp.asarray(rng.normal(size=(3, 3, 4, 4)) * 0.3, jnp.float32)
X = jnp.asarray(rng.normal(size=(2, 8, 8, 4)), jnp.float32)


def c(x, w, s=1):
    return jnp.tanh(lax.conv_general_dilated(x, w, (s, s), ((1, 1), (1, 1)), dimension_numbers=NHWC,
                                             precision="highest"))


@jax.custom_vjp
def scaled(x, w):
    """A custom_vjp whose bwd gives twice the true gradient, computed with jax.vjp (XLA's own transpose)."""
    return c(x, w)


scaled.defvjp(lambda x, w: (scaled(x, w), (x, w)), lambda r, g: tuple(2.0 * d for d in jax.vjp(c, *r)[1](g)))


@jax.custom_jvp
def own_rule(x, w):
    return c(x, w)


own_rule.defjvp(lambda p, t: (own_rule(*p), jax.jvp(c, p, t)[1]))

CLOSED_CALL = core.primitives.closed_call_p
CASES = {
    "plain": lambda x, w: c(x, w),
    "NCHW/OIHW, stride 2": lambda x, w: jnp.transpose(lax.conv_general_dilated(
        jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(w, (3, 2, 0, 1)), (2, 2), ((1, 1), (1, 1)),
        dimension_numbers=("NCHW", "OIHW", "NCHW"), precision="highest"), (0, 2, 3, 1)),
    "jit": lambda x, w: jax.jit(c)(x, w),
    "scan": lambda x, w: lax.scan(lambda h, _: (c(h, w), None), x, None, length=2)[0],
    "fori_loop": lambda x, w: lax.fori_loop(0, 2, lambda i, h: c(h, w), x),
    "while": lambda x, w: lax.while_loop(lambda s: s[0] < 2, lambda s: (s[0] + 1, c(s[1], w)), (0, x))[1],
    "cond": lambda x, w: lax.cond(x.sum() > 0, lambda h: c(h, w), lambda h: c(h, -w), x),
    "checkpoint": lambda x, w: jax.checkpoint(c)(x, w),
    "custom_vjp": lambda x, w: scaled(x, w),
    "closed_call": lambda x, w: CLOSED_CALL.bind(
        x, w, **CLOSED_CALL.get_bind_params({"call_jaxpr": jax.make_jaxpr(c)(X, W)}))[0],
    "shard_map": lambda x, w: jax.shard_map(lambda a: c(a, w) + lax.psum(a.sum(), "d"),
                                            mesh=Mesh(np.array(jax.devices()[:1]), ("d",)),
                                            in_specs=P("d"), out_specs=P("d"))(x),
}
CONVS = {"cond": 2}


def loss(f):
    return lambda x, w: (f(x, w) ** 2).sum()


def close(a, b, tol=1e-4):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(u, v, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_computes_the_same_function_and_counts_its_convolutions(name):
    f = CASES[name]
    g = rewrite.fast_gradients(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rewrite.RewriteWarning)   # nothing is left on XLA's rule
        assert rewrite.count(f, X, W) == {"dense": CONVS.get(name, 1), "depthwise": 0, "kept": 0}
        close(g(X, W), f(X, W), 1e-6)
        if name != "while":   # JAX has no reverse mode through while_loop
            close(jax.grad(loss(g), (0, 1))(X, W), jax.grad(loss(f), (0, 1))(X, W))
        t = (jnp.ones_like(X), 0.1 * jnp.ones_like(W))
        if name != "custom_vjp":   # JAX has no forward mode through a custom_vjp, rewritten or not
            close(jax.jvp(g, (X, W), t), jax.jvp(f, (X, W), t))


def conv_rules(jaxpr) -> list:
    """For every convolution in a jaxpr and its sub-jaxprs: "forward" (NHWC/HWIO, no lhs dilation: ferjax's
    rules) or "xla" (a kernel with in and out swapped, or a dilated gradient: XLA's own transpose)."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive is core.primitives.conv_general_dilated_p:
            p = eqn.params
            plain = p["dimension_numbers"] == FORWARD and set(p["lhs_dilation"]) == {1}
            out.append("forward" if plain else "xla")
        for sub in core.jaxprs_in_params(eqn.params):
            out += conv_rules(sub)
    return out


def test_no_input_gradient_inside_scan_checkpoint_or_custom_vjp_is_left_on_xlas_rule():
    def net(x, w):
        # stride 2 inside a scan, stride 1 under jax.checkpoint, and a custom_vjp whose bwd uses XLA's transpose
        x = lax.scan(lambda _, h: (None, c(h, w, 2)), None, x[None])[1][0]
        x = jax.checkpoint(lambda h: c(h, w))(x)
        return scaled(x, w)

    x = jnp.asarray(rng.normal(size=(2, 16, 16, 4)), jnp.float32)
    input_grad = lambda f: jax.grad(lambda x: loss(f)(x, W))   # noqa: E731 - what GradCAM and EP take
    before = conv_rules(jax.make_jaxpr(input_grad(net))(x).jaxpr)
    assert before.count("xla") >= 3          # the check sees XLA's rule where it is
    fast = rewrite.fast_gradients(net)
    after = conv_rules(jax.make_jaxpr(input_grad(fast))(x).jaxpr)
    assert after and set(after) == {"forward"}
    assert rewrite.count(net, x, W) == {"dense": 3, "depthwise": 0, "kept": 0}
    close(input_grad(fast)(x), input_grad(net)(x))


def test_count_is_what_the_pass_did():
    # the rewritten function's jaxpr holds one fast_conv per convolution count() calls dense
    f = CASES["scan"]
    text = str(jax.make_jaxpr(rewrite.fast_gradients(f))(X, W))
    assert text.count("custom_jvp_call") >= rewrite.count(f, X, W)["dense"] == 1
    assert "custom_jvp_call" not in str(jax.make_jaxpr(f)(X, W))


def test_the_custom_vjp_rule_is_kept():
    g = rewrite.fast_gradients(CASES["custom_vjp"])
    ratio = jax.grad(loss(g))(X, W) / jax.grad(loss(CASES["plain"]))(X, W)
    np.testing.assert_allclose(ratio, 2.0, rtol=1e-4)


def test_convolutions_that_stay_are_named_once_and_stay_correct():
    def kept(x, w):
        return (lax.conv_general_dilated(x, w, (1, 1), "SAME", rhs_dilation=(2, 2), dimension_numbers=NHWC)
                + lax.conv_general_dilated(x, w[:, :, :2], (1, 1), "SAME", dimension_numbers=NHWC,
                                           feature_group_count=2)
                + own_rule(x, w))

    assert rewrite.count(kept, X, W) == {"dense": 0, "depthwise": 0, "kept": 3}
    with pytest.warns(rewrite.RewriteWarning) as caught:
        out = rewrite.fast_gradients(kept)(X, W)
    (message,) = [str(w.message) for w in caught]
    for why in ("dilated (rhs_dilation (2, 2))", "grouped (2 groups of 2 channels)", "custom_jvp"):
        assert why in message
    close(out, kept(X, W), 1e-6)


def test_depthwise_with_negative_padding():
    x = jnp.asarray(rng.normal(size=(2, 10, 10, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 3, 1, 6)), jnp.float32)

    def dw(x, w):
        return lax.conv_general_dilated(x, w, (2, 1), ((-1, 1), (2, -2)), dimension_numbers=NHWC,
                                        feature_group_count=3, precision="highest")

    assert rewrite.count(dw, x, w)["depthwise"] == 1
    fast = rewrite.fast_gradients(dw)
    close(fast(x, w), dw(x, w), 1e-5)
    close(jax.grad(loss(fast), (0, 1))(x, w), jax.grad(loss(dw), (0, 1))(x, w), 1e-3)


def test_jvp_through_a_rewritten_network():
    from test_network import images, plain_cnn

    params, features, _ = plain_cnn("NCHW")
    x = images()
    fast = rewrite.fast_gradients(features)
    t = jnp.ones_like(x)
    close(jax.jvp(lambda x: fast(params, x), (x,), (t,)), jax.jvp(lambda x: features(params, x), (x,), (t,)))
    # and a Hessian-vector product: forward over reverse
    hvp = lambda f: jax.jvp(jax.grad(lambda x: (f(params, x) ** 2).sum()), (x,), (t,))[1]   # noqa: E731
    close(hvp(fast), hvp(features), 1e-3)
