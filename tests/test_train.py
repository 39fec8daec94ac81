"""Tests for ferjax.networks.train: learning, determinism, resume, data parallelism, one-vs-one, 2AFC."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ferjax.networks import cnn, train
from ferjax.plumbing.errors import InputError

S = 16


def easy_task(n, seed):
    """Class 0: bright top half; class 1: bright bottom half (flip- and shift-robust)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, S, S, 1)).astype(np.uint8)
    for i, y in enumerate(labels):
        images[i, y * S // 2:(y + 1) * S // 2] += 140
    return images, labels


X, Y = easy_task(128, 0)
VX, VY = easy_task(32, 1)
SETTINGS = dict(model="tiny", num_classes=2, batch_size=16, lr=1e-2, warmup=2, progress=False)


def same(a, b):
    return all(jax.tree.leaves(jax.tree.map(lambda u, v: bool(np.array_equal(u, v)), a, b)))


@pytest.fixture(scope="module")
def reference():
    return train.train(X, Y, VX, VY, steps=12, seed=0, **SETTINGS)


def test_training_reduces_the_loss():
    params, history = train.train(X, Y, VX, VY, steps=40, seed=0, **SETTINGS)
    assert history["loss"][-5:].mean() < history["loss"][:5].mean() - 0.2
    result = train.evaluate(params, VX, VY, model="tiny", num_classes=2)
    assert result["accuracy"] >= 0.9 and history["val_accuracy"][-1] == result["accuracy"]


def test_same_seed_same_params(reference):
    params, history = train.train(X, Y, VX, VY, steps=12, seed=0, **SETTINGS)
    assert same(params, reference[0]) and np.array_equal(history["loss"], reference[1]["loss"])
    other, _ = train.train(X, Y, VX, VY, steps=12, seed=1, **SETTINGS)
    assert not same(other, reference[0])


def test_killed_run_resumes_to_the_same_params(reference, tmp_path):
    def kill(step, metrics):
        if step == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train(X, Y, VX, VY, steps=12, seed=0, checkpoint_dir=tmp_path, save_every=4, callback=kill,
                    **SETTINGS)
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit())[-1] == 8
    params, history = train.train(X, Y, VX, VY, steps=12, seed=0, checkpoint_dir=tmp_path, save_every=4,
                                  **SETTINGS)
    assert list(history["step"]) == [9, 10, 11, 12]
    assert same(params, reference[0])
    best, step = train.best_params(tmp_path)
    assert step in (4, 8, 12)
    kept = sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit())
    assert 12 in kept and step in kept and len(kept) <= 2


SCRIPT = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {tests!r})
from test_train import X, Y, VX, VY, SETTINGS
from ferjax.networks import train
from ferjax.plumbing.errors import InputError
params, history = train.train(X, Y, VX, VY, steps=12, seed=0, **SETTINGS)
try:
    train.train(X, Y, steps=1, **dict(SETTINGS, batch_size=12))
    bad = "accepted"
except InputError as err:
    bad = str(err)
print(json.dumps({{"devices": jax.device_count(), "loss": history["loss"].tolist(),
                  "val": history["val_accuracy"].tolist(), "bad": bad,
                  "params": [np.asarray(p).tolist() for p in jax.tree.leaves(params)]}}))
"""


def test_eight_devices_match_one(reference):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=os.path.dirname(__file__))], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8 and "does not divide" in result["bad"]
    np.testing.assert_allclose(result["loss"], reference[1]["loss"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result["val"], reference[1]["val_accuracy"])
    for a, b in zip(result["params"], jax.tree.leaves(reference[0])):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_pair_index_matches_pairs():
    for i, (a, b) in enumerate(train.pairs(8)):
        assert train.pair_index(a, b) == i == train.pair_index(b, a)
    assert len(train.pairs(8)) == 28


def test_one_vs_one_trains_28_stacked_classifiers():
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 8
    images = rng.integers(0, 256, (96, S, S, 1)).astype(np.uint8)
    params, history = train.train(images, labels, images[:16], labels[:16], mode="one_vs_one", steps=3,
                                  **dict(SETTINGS, num_classes=8, batch_size=4))
    assert params["head"]["kernel"].shape == (28, 16, 2)
    assert all(p.shape[0] == 28 for p in jax.tree.leaves(params)) and np.isfinite(history["loss"]).all()
    # lax.map over pairs is the same computation as vmap
    mapped, _ = train.train(images, labels, mode="one_vs_one", steps=3, pair_map="map",
                            **dict(SETTINGS, num_classes=8, batch_size=4))
    for a, b in zip(jax.tree.leaves(mapped), jax.tree.leaves(params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def constant_params(bias, stacked=False):
    """A tiny network whose logits are exactly ``bias`` (zero head kernel)."""
    c = np.shape(bias)[-1]
    params = cnn.create("tiny", num_classes=c, channels=1, size=S, key=jax.random.key(0))[0]
    params = jax.tree.map(np.asarray, params)
    params["head"] = {"kernel": np.zeros((16, c), np.float32), "bias": np.asarray(bias, np.float32)}
    if stacked:
        n = len(bias)
        params = {"convs": jax.tree.map(lambda p: np.stack([p] * n), params["convs"]),
                  "head": {"kernel": np.zeros((n, 16, c), np.float32), "bias": np.asarray(bias, np.float32)}}
    return params


def test_two_afc_uses_the_pair_classifier():
    pairs = train.pairs(8)
    # pair p answers its lower class when p is even, its higher class when p is odd
    bias = [[1.0, -1.0] if p % 2 == 0 else [-1.0, 1.0] for p in range(28)]
    params = constant_params(bias, stacked=True)
    true, foil = np.array([[a, b] for a in range(8) for b in range(8) if a != b]).T
    images = np.zeros((len(true), S, S, 1), np.uint8)
    got = train.two_afc(params, images, true, foil, model="tiny", mode="one_vs_one")
    expected = [(pairs.index(tuple(sorted((t, f)))) % 2 == 0) == (t < f) for t, f in zip(true, foil)]
    np.testing.assert_array_equal(got, expected)
    # multiclass: the alternative with the higher logit wins
    got = train.two_afc(constant_params(np.arange(8.0)), images, true, foil, model="tiny")
    np.testing.assert_array_equal(got, true > foil)
    with pytest.raises(InputError):
        train.two_afc(params, images[:1], [2], [2], model="tiny", mode="one_vs_one")


def test_evaluate_metrics():
    params = constant_params(np.eye(8)[3])  # always predicts class 3
    labels = np.array([0, 3, 3, 5, 3, 0])
    result = train.evaluate(params, np.zeros((6, S, S, 1), np.uint8), labels, model="tiny")
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["confusion"][:, 3].tolist() == [2, 0, 0, 3, 0, 1, 0, 0] and result["confusion"].sum() == 6
    assert result["per_class"][3] == 1.0 and result["per_class"][0] == 0.0 and np.isnan(result["per_class"][1])
    assert result["macro_f1"] == pytest.approx((0 + 2 * 3 / 9 + 0) / 3)


def test_a_finished_run_resumed_reports_its_validation_score(tmp_path):
    first, _ = train.train(X, Y, VX, VY, steps=4, seed=0, checkpoint_dir=tmp_path, save_every=4, **SETTINGS)
    params, history = train.train(X, Y, VX, VY, steps=4, seed=0, checkpoint_dir=tmp_path, save_every=4,
                                  **SETTINGS)
    assert same(params, first) and list(history["step"]) == []  # nothing re-ran
    assert list(history["val_step"]) == [4]
    assert history["val_accuracy"][0] == train.evaluate(params, VX, VY, model="tiny", num_classes=2)["accuracy"]
