"""Any network: heads of the maps, the convolution rewrite, and networks ferjax did not build."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ferjax.explain import activation, perturbation
from ferjax.networks import rewrite
from ferjax.networks.interface import Cut, Head, Tokens, as_head, label_index


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
    old = perturbation.extremal_perturbation(features, classifier, params, x, t, **kw)["masks"]
    new = perturbation.extremal_perturbation(features, head, params, x, t, **kw)["masks"]
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


def test_depthwise_convolutions_are_counted_and_keep_xlas_grouped_convolution_without_a_warning():
    rng = np.random.default_rng(2)
    w = jnp.asarray(rng.normal(size=(3, 3, 1, 12)), jnp.float32)    # multiplier 2 over 6 channels
    x = jnp.asarray(rng.normal(size=(2, 11, 11, 6)), jnp.float32)

    def depthwise(w, x):
        return lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=6, precision=lax.Precision.HIGHEST)

    fast = rewrite.fast_gradients(depthwise)
    assert rewrite.count(depthwise, w, x) == {"dense": 0, "depthwise": 1, "kept": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error", rewrite.RewriteWarning)   # the fast rule, not one that could not be had
        np.testing.assert_allclose(fast(w, x), depthwise(w, x), atol=1e-5)
    assert "feature_group_count=6" in str(jax.make_jaxpr(fast)(w, x))
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
    ep = perturbation.extremal_perturbation(features, flatten, params, x, t, areas=(0.1,), max_iter=3, step=2, sigma=4)
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


def toy_vit(seed=0, k=6, c=4, patch=4):
    """A one-block transformer-like network in JAX: patch tokens and a class token, a mixing step that writes
    into the class token, and a head that reads only the class token (the residual stream crosses the cut)."""
    rng = np.random.default_rng(seed)
    p = {"embed": jnp.asarray(rng.normal(size=(patch * patch * 3, k)) * 0.3, jnp.float32),
         "cls": jnp.asarray(rng.normal(size=(k,)), jnp.float32),
         "mix": jnp.asarray(rng.normal(size=(k, k)) * 0.3, jnp.float32),
         "W": jnp.asarray(rng.normal(size=(k, c)), jnp.float32)}

    def tokens(p, x):
        n, h, w, ch = x.shape
        t = x.reshape(n, h // patch, patch, w // patch, patch, ch).transpose(0, 1, 3, 2, 4, 5)
        t = t.reshape(n, -1, patch * patch * ch) @ p["embed"]
        return jnp.concatenate([jnp.broadcast_to(p["cls"], (n, 1, k)), t], axis=1)   # (N, 1 + hw, K)

    def normed(t):
        return t / (1.0 + jnp.abs(t).mean(-1, keepdims=True))

    def features(p, x):   # cut at the norm: the raw tokens (the residual stream) are carried
        t = tokens(p, x)
        return Cut(normed(t), (t,))

    def head(p, cut):
        mixed = jnp.tanh(cut.maps @ p["mix"]).mean(axis=1, keepdims=True)   # every token into the class token
        cls = (cut.carry[0] + mixed)[:, 0]
        return cls @ p["W"]

    return p, features, Head(head), tokens, normed


def test_gradcam_on_tokens_holds_the_carried_values_fixed_and_drops_the_class_token():
    p, features, head, tokens, normed = toy_vit()
    x, t = images(2, 16), np.array([0, 3])
    got = activation.gradcam(features, head, p, x, t, relu=False, normalize=False, upsample=False)
    # by hand: d y_c / d (normed tokens) with the residual fixed; patch tokens as a 4x4 grid
    raw = tokens(p, x)
    a = normed(raw)
    g = jax.vmap(lambda ai, ri, c: jax.grad(lambda m: head(p, Cut(m[None], (ri[None],)))[0, c])(ai))(a, raw, t)
    grid = lambda v: v[:, 1:].reshape(2, 4, 4, -1)   # noqa: E731
    want = jnp.einsum("nhwk,nk->nhw", grid(a), grid(g).mean(axis=(1, 2)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the same with the layout given, or the user's own reshape
    for tok in (Tokens(grid=(4, 4)), Tokens(prefix=1), grid):
        np.testing.assert_allclose(activation.gradcam(features, head, p, x, t, relu=False, normalize=False,
                                                      upsample=False, tokens=tok), want, rtol=1e-4, atol=1e-5)
    assert activation.gradcam(features, head, p, x, t).shape == (2, 16, 16)
    with pytest.raises(ValueError, match="carried across the cut"):
        activation.cam(features, head, p, x, t)


def test_token_layouts():
    assert Tokens().layout(197, (224, 224)) == ((14, 14), 1)      # ViT-B/16 with its class token
    assert Tokens().layout(196, (224, 224)) == ((14, 14), 0)      # no class token
    assert Tokens().layout(13, (64, 48)) == ((4, 3), 1)           # non-square, patch 16
    assert Tokens(grid=(2, 2)).layout(5, (64, 64)) == ((2, 2), 1)
    with pytest.raises(ValueError, match="no patch grid"):
        Tokens().layout(30, (7, 7))


def test_cam_on_mean_pooled_tokens_equals_cam_on_their_grid():
    rng = np.random.default_rng(4)
    w = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    def features(p, x):   # 16 patch tokens, no class token
        return x.reshape(x.shape[0], 4, 4, 4, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(x.shape[0], 16, 48)[..., :5]
    head = Head(lambda p, a: a.mean(axis=1) @ p)
    grid_features = lambda p, x: features(p, x).reshape(x.shape[0], 4, 4, 5)   # noqa: E731
    x, t = images(2, 16), np.array([1, 2])
    np.testing.assert_allclose(activation.cam(features, head, w, x, t),
                               activation.cam(grid_features, lambda p, z: z @ p, w, x, t), atol=1e-5)


def test_the_fast_preset_is_fast_by_itself():
    from ferjax.explain import perturbation

    assert perturbation.MAX_ITER == {"faithful": 800, "fast": 120}
    params, features, classifier = plain_cnn()
    out = perturbation.extremal_perturbation(features, classifier, params, images(1, 16), [0], step=2, sigma=4,
                                           preset="fast")
    assert out["masks"].shape == (1, 1, 16, 16) and np.isfinite(np.asarray(out["reward"])).all()


def test_label_maps_by_name_in_python_too():
    from ferjax.networks.importers import LABEL_MAPS, checked_labels
    from ferjax.plumbing.errors import InputError

    assert checked_labels("fer2013", 7, "model.h5") == LABEL_MAPS["fer2013"]
    with pytest.raises(InputError, match="1000 outputs, more than AffectNet's 8 classes"):
        checked_labels(None, 1000, "resnet.pt")
