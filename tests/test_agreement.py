"""Error consistency and performance concordance on hand-computable cases and invariants."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ferjax.analysis import agreement


def test_never_right_together_is_minus_one():
    # each right on half the trials, never on the same ones: c_obs = 0, c_exp = 0.5
    a = np.array([1, 1, 0, 0], bool)
    b = ~a
    assert agreement.kappa(a, b) == pytest.approx(-1.0)
    assert agreement.pairwise(np.stack([a, b]))["kappa"][0, 1] == pytest.approx(-1.0)


def test_hand_computed_kappa():
    # a right on 6 of 8, b on 4 of 8, both right on 3, both wrong on 1:
    # c_obs = 4/8 = 0.5, c_exp = 0.75 * 0.5 + 0.25 * 0.5 = 0.5 -> kappa 0
    a = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)
    b = np.array([1, 1, 1, 0, 0, 0, 1, 0], bool)
    assert agreement.kappa(a, b) == pytest.approx(0.0)
    # both right on the same 3 of 4, wrong on the fourth: c_obs = 1 -> kappa 1
    c = np.array([1, 1, 1, 0], bool)
    assert agreement.kappa(c, c) == 1.0
    # a: 1 1 1 0, b: 1 1 0 0 -> c_obs 3/4, c_exp .75*.5 + .25*.5 = .5, kappa (.75-.5)/.5 = .5
    assert agreement.kappa(c, np.array([1, 1, 0, 0], bool)) == pytest.approx(0.5)
    # two flawless observers agree completely (the toolbox's convention for c_exp = 1)
    assert agreement.kappa(np.ones(5, bool), np.ones(5, bool)) == 1.0


def test_pairwise_uses_only_the_items_both_saw():
    rng = np.random.default_rng(0)
    r = rng.random((3, 40)) < 0.7
    v = rng.random((3, 40)) < 0.8
    k = agreement.pairwise(r, v)["kappa"]
    both = v[0] & v[2]
    assert k[0, 2] == pytest.approx(agreement.kappa(r[0, both], r[2, both]), abs=1e-6)
    assert k[0, 2] == pytest.approx(k[2, 0], abs=1e-6)


def test_weights_are_repetitions():
    rng = np.random.default_rng(1)
    r = rng.random((4, 30)) < 0.6
    w = rng.integers(0, 4, 30).astype(np.float32)
    repeated = np.repeat(r, w.astype(int), axis=1)
    assert np.allclose(agreement.pairwise(r, weights=w)["kappa"], agreement.pairwise(repeated)["kappa"], atol=1e-5)
    boot = agreement.resample_weights(30, 7, seed=3)
    assert boot.shape == (7, 30) and (boot.sum(1) == 30).all()
    assert agreement.pairwise(r, weights=boot)["kappa"].shape == (7, 4, 4)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=60))
def test_kappa_is_symmetric_and_bounded(pairs):
    a, b = (np.array(x, bool) for x in zip(*pairs))
    k = agreement.kappa(a, b)
    assert k == pytest.approx(agreement.kappa(b, a))
    assert -1 - 1e-9 <= k <= 1 + 1e-9
    assert agreement.kappa(a, a) == 1.0


def test_concordance_and_its_ceiling():
    x = np.linspace(0, 1, 20)
    assert agreement.concordance(x, 0.3 + 0.5 * x) == pytest.approx(1.0)
    assert agreement.concordance(x, 1 - x) == pytest.approx(-1.0)
    # identical observers: every split's halves agree exactly
    r = np.tile(np.random.default_rng(2).random(50) < 0.5, (6, 1))
    assert agreement.split_half_concordance(r, n_splits=5)["spearman_brown"] == pytest.approx(1.0)


def test_outcomes_score_zero_click_trials_as_wrong():
    trials = pd.DataFrame({"participant": ["a", "a", "b", "b"], "filename": ["x", "y", "x", "y"],
                           "correct": [True, True, True, False], "count": [3, 0, 2, 4]})
    r, v, people, items = agreement.outcomes(trials)
    assert people == ["a", "b"] and items == ["x", "y"]
    assert r.tolist() == [[True, False], [True, False]] and v.all()


def test_people_consistency_interval():
    rng = np.random.default_rng(4)
    hard = rng.random(200) < 0.3                       # the same items are hard for everyone
    r = np.where(hard, rng.random((10, 200)) < 0.4, rng.random((10, 200)) < 0.95)
    out = agreement.people_consistency(r, n_boot=300)
    assert out["pairs"] == 45 and out["ci95"][0] > 0.1 and out["ci95"][0] <= out["mean"] <= out["ci95"][1]
    independent = rng.random((10, 200)) < 0.8
    out = agreement.people_consistency(independent, n_boot=300)
    assert out["ci95"][0] < 0 < out["ci95"][1]
