"""Any network: heads of the maps, the convolution rewrite, and networks ferjax did not build."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ferjax.explain import activation
from ferjax.networks import rewrite
from ferjax.networks.interface import Head, as_head, label_index


def plain_cnn(layout="NHWC", seed=0):
    """A 3-layer CNN written with plain lax convolutions (no ferjax.networks.conv), as a new user would write it."""
    rng = np.random.default_rng(seed)
    chans = ((3, 8, 1), (8, 16, 2), (16, 16, 1))
    params = {f"w{i}": jnp.asarray(rng.normal(size=(3, 3, ci, co)) * np.sqrt(2 / (9 * ci)), jnp.float32)
              for i, (ci, co, _) in enumerate(chans)}
    params["W"] = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    params["b"] = jnp.asarray(rng.normal(size=4), jnp.float32)

    def features(p, x):
        if layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        for i, (_, _, s) in enumerate(chans):
            w = p[f"w{i}"] if layout == "NHWC" else p[f"w{i}"].transpose(3, 2, 0, 1)
            spec = (layout, "HWIO" if layout == "NHWC" else "OIHW", layout)
            x = jax.nn.relu(lax.conv_general_dilated(x, w, (s, s), ((1, 1), (1, 1)), dimension_numbers=spec,
                                                     precision=lax.Precision.HIGHEST))
        return x if layout == "NHWC" else x.transpose(0, 2, 3, 1)

    def classifier(p, pooled):
        return jnp.dot(pooled, p["W"], precision="highest") + p["b"]

    return params, features, classifier


def images(n=3, size=16, seed=1):
    return jax.random.uniform(jax.random.PRNGKey(seed), (n, size, size, 3))


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_old_and_new_interface_give_the_same_maps(layout):
    params, features, classifier = plain_cnn(layout)
    head = Head(lambda p, a: classifier(p, a.mean(axis=(1, 2))))
    x, t = images(), np.array([0, 3, 1])
    for fn in (activation.cam, activation.gradcam):
        np.testing.assert_allclose(fn(features, classifier, params, x, t), fn(features, head, params, x, t),
                                   atol=1e-5)
    kw = dict(areas=(0.1,), max_iter=4, step=2, sigma=4)
    old = activation.extremal_perturbation(features, classifier, params, x, t, **kw)["masks"]
    new = activation.extremal_perturbation(features, head, params, x, t, **kw)["masks"]
    np.testing.assert_allclose(old, new, atol=1e-5)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_rewritten_convolutions_compute_the_same_function_and_gradients(layout):
    params, features, _ = plain_cnn(layout)
    x = images()
    fast = rewrite.fast_gradients(features)
    assert rewrite.count(features, params, x) == {"dense": 3, "depthwise": 0, "kept": 0}
    np.testing.assert_allclose(fast(params, x), features(params, x), atol=1e-5)

    def loss(f):
        return lambda p, x: (f(p, x) ** 2).sum()

    want = jax.grad(loss(features), argnums=(0, 1))(params, x)
    got = jax.jit(jax.grad(loss(fast), argnums=(0, 1)))(params, x)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)


def test_depthwise_convolutions_are_rewritten_exactly():
    rng = np.random.default_rng(2)
    w = jnp.asarray(rng.normal(size=(3, 3, 1, 12)), jnp.float32)    # multiplier 2 over 6 channels
    x = jnp.asarray(rng.normal(size=(2, 11, 11, 6)), jnp.float32)

    def depthwise(w, x):
        return lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=6, precision=lax.Precision.HIGHEST)

    fast = rewrite.fast_gradients(depthwise)
    assert rewrite.count(depthwise, w, x)["depthwise"] == 1
    np.testing.assert_allclose(fast(w, x), depthwise(w, x), atol=1e-5)
    gw, gx = jax.grad(lambda w, x: (depthwise(w, x) ** 2).sum(), argnums=(0, 1))(w, x)
    fw, fx = jax.grad(lambda w, x: (fast(w, x) ** 2).sum(), argnums=(0, 1))(w, x)
    np.testing.assert_allclose(fw, gw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fx, gx, rtol=1e-4, atol=1e-4)


def test_any_head_for_gradcam_and_ep_but_cam_names_the_reason():
    params, features, _ = plain_cnn()
    rng = np.random.default_rng(3)
    params = {**params, "D": jnp.asarray(rng.normal(size=(8 * 8 * 16, 4)) * 0.05, jnp.float32)}
    flatten = Head(lambda p, a: jnp.dot(a.reshape(a.shape[0], -1), p["D"], precision="highest"))  # VGG-style
    x, t = images(), np.array([0, 1, 2])
    maps = np.asarray(activation.gradcam(features, flatten, params, x, t))
    assert maps.shape == (3, 16, 16) and np.isfinite(maps).all() and maps.max() > 0
    ep = activation.extremal_perturbation(features, flatten, params, x, t, areas=(0.1,), max_iter=3, step=2, sigma=4)
    assert np.isfinite(np.asarray(ep["masks"])).all()
    with pytest.raises(ValueError, match="depends on where in the maps the features are"):
        activation.cam(features, flatten, params, x, t)
    # a head that pools first but is not affine fails the affine check instead
    tanh = Head(lambda p, a: jnp.tanh(a.mean(axis=(1, 2))) @ p["W"])
    with pytest.raises(ValueError, match="affine"):
        activation.cam(features, tanh, params, x, t)


def test_a_gap_affine_head_of_the_maps_gives_cam():
    params, features, classifier = plain_cnn()
    head = Head(lambda p, a: jnp.einsum("nhwk,kc->nc", a, p["W"], precision="highest") / (a.shape[1] * a.shape[2])
                + p["b"])
    x, t = images(), np.array([0, 1, 2])
    np.testing.assert_allclose(activation.cam(features, head, params, x, t),
                               activation.cam(features, classifier, params, x, t), atol=1e-5)


def test_heads_compare_equal_so_jit_compiles_once():
    f = lambda p, z: z  # noqa: E731
    assert as_head(f) == as_head(f) and hash(as_head(f)) == hash(as_head(f)) and as_head(f).pooled
    assert as_head(Head(f)) == Head(f) and not Head(f).pooled
    with pytest.raises(TypeError):
        as_head("not a function")


def test_label_maps():
    fer = label_index([6, 5, 4, 1, 2, 3, 0], 7)   # FER2013's order
    assert fer.tolist() == [6, 3, 4, 5, 2, 1, 0, -1]
    with pytest.raises(ValueError, match="outputs"):
        label_index([0, 1], 3)
    with pytest.raises(ValueError, match="at most once"):
        label_index([0, 0, 1], 3)
