"""Tests for ferjax.networks.cnn: the CAM contract of every network size."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax.explain import activation
from ferjax.networks import cnn
from ferjax.plumbing.errors import InputError


@pytest.mark.parametrize("name,size,channels,side", [("tiny", 16, 1, 8), ("small", 32, 1, 4), ("fine", 32, 1, 8),
                                                     ("resnet18", 32, 3, 1)])
def test_logits_are_classifier_of_pooled_features(name, size, channels, side):
    params, features, classifier = cnn.create(name, num_classes=8, channels=channels, size=size,
                                                key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (2, size, size, channels))
    f = features(params, x)
    assert f.shape[:3] == (2, side, side) and f.dtype == jnp.float32   # fine: 1/4 of the side, small: 1/8
    z = cnn.logits(features, classifier, params, x)
    np.testing.assert_array_equal(z, classifier(params, f.mean((1, 2))))
    assert z.shape == (2, 8)
    # CAM: the spatial mean of a class's map is its logit minus the bias
    maps = activation.cam(features, classifier, params, x, np.array([3, 5]), relu=False, normalize=False,
                           upsample=False)
    bias = np.asarray(params["head"]["bias"])[[3, 5]]
    np.testing.assert_allclose(maps.mean((1, 2)), np.asarray(z)[[0, 1], [3, 5]] - bias, rtol=1e-4, atol=1e-4)


def test_bfloat16_compute_keeps_float32_params():
    params, features, classifier = cnn.create("small", num_classes=8, channels=1, size=16,
                                                key=jax.random.key(0), dtype=jnp.bfloat16)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 1))
    z = cnn.logits(features, classifier, params, x)
    assert z.dtype == jnp.float32
    ref = cnn.functions("small", num_classes=8, channels=1)
    np.testing.assert_allclose(z, cnn.logits(*ref, params, x), atol=0.1)


def test_same_key_same_params_and_pure_functions():
    a = cnn.create("tiny", num_classes=2, channels=1, size=8, key=jax.random.key(3))
    b = cnn.create("tiny", num_classes=2, channels=1, size=8, key=jax.random.key(3))
    jax.tree.map(np.testing.assert_array_equal, a[0], b[0])
    x = jnp.ones((1, 8, 8, 1))
    jitted = jax.jit(lambda p, x: cnn.logits(a[1], a[2], p, x))
    np.testing.assert_allclose(jitted(a[0], x), cnn.logits(*a[1:], a[0], x), rtol=1e-5)


def test_apply_chunks_uint8_images():
    params, features, classifier = cnn.create("tiny", num_classes=3, channels=1, size=8, key=jax.random.key(0))
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1)).astype(np.uint8)
    z = cnn.apply(params, images, "tiny", num_classes=3, chunk=2)
    np.testing.assert_allclose(z, cnn.logits(features, classifier, params, cnn.preprocess(images)), rtol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(name="vgg"), dict(name="resnet18", size=16)])
def test_bad_model_settings(kwargs):
    args = dict(name="tiny", num_classes=8, channels=1, size=64, key=jax.random.key(0)) | kwargs
    with pytest.raises(InputError):
        cnn.create(args.pop("name"), **args)
