"""Bootstrap intervals, paired tests, Holm correction and exact tests."""

import itertools

import numpy as np
import pytest
from scipy import stats as st

from ferjax.analysis import stats


def test_holm_by_hand():
    # Sorted p: .01*4=.04, .02*3=.06, .03*2=.06 (monotone), .5*1=.5
    np.testing.assert_allclose(stats.holm([0.03, 0.01, 0.5, 0.02]), [0.06, 0.04, 0.5, 0.06])
    assert stats.holm([0.9, 0.8])[0] == 1.0


def test_exact_permutation_by_enumeration():
    a, b = np.array([3.0, 1.0, 4.0, 1.5]), np.array([1.0, 1.5, 2.0, 0.0])
    d = a - b
    flips = [abs(np.mean(np.array(s) * d)) >= abs(d.mean()) - 1e-12
             for s in itertools.product([-1, 1], repeat=4)]
    assert stats.permutation_test(a, b) == pytest.approx(np.mean(flips))


def test_random_permutation_detects_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 1, 60)
    b = rng.normal(0.0, 1, 60)
    assert stats.permutation_test(a + 1, a) < 0.001
    assert stats.permutation_test(a, a + rng.normal(0, 1e-3, 60) * 0) == 1.0
    assert 0 <= stats.permutation_test(a, b) <= 1


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.random(30), rng.random(30)
    assert stats.wilcoxon(a, b) == pytest.approx(st.wilcoxon(a - b).pvalue)
    assert stats.wilcoxon(a, a) == 1.0


def test_wilcoxon_with_ties_and_zeros_matches_scipys_exact_permutation_test():
    """ferjax enumerates the 2^n sign flips as one array product; scipy one Python call per flip."""
    rng = np.random.default_rng(4)
    for n in [*range(1, 11)] * 4 + [12, 13, 14]:   # 13 is the largest scipy enumerates; 14 is asymptotic
        d = rng.integers(-3, 4, n) * 0.5          # small integers: ties and zeros
        if not np.any(d != 0):
            continue
        assert stats.wilcoxon(d, np.zeros(n)) == pytest.approx(st.wilcoxon(d, zero_method="wilcox").pvalue,
                                                               rel=1e-12, abs=1e-15), d


def test_mcnemar_by_hand():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 0], bool)
    b = np.array([1, 0, 0, 0, 0, 1, 1, 0], bool)
    out = stats.mcnemar(a, b)
    assert out["a_only"] == 3 and out["b_only"] == 1
    assert out["p"] == pytest.approx(st.binomtest(3, 4, 0.5).pvalue)
    assert stats.mcnemar(a, a)["p"] == 1.0


def test_bootstrap_interval_brackets_the_mean_and_shrinks():
    rng = np.random.default_rng(2)
    small = rng.normal(1.0, 1.0, 20)
    large = rng.normal(1.0, 1.0, 2000)
    m, lo, hi = stats.bootstrap_ci(small)
    assert lo < m < hi
    _, lo2, hi2 = stats.bootstrap_ci(large)
    assert (hi2 - lo2) < (hi - lo) and lo2 < large.mean() < hi2
    m3, lo3, hi3 = stats.bootstrap_ci(np.stack([small, small * 2], 1))
    assert m3.shape == (2,) and np.allclose(m3, [small.mean(), 2 * small.mean()])


def test_cluster_bootstrap_resamples_groups():
    values = np.array([1.0, 1.0, 1.0, 5.0])
    groups = np.array(["a", "a", "a", "b"])
    m, lo, hi = stats.bootstrap_ci(values, groups=groups, n_boot=500)
    # Resampling whole groups: the mean of a resample is 1, 2 (a, b mixed: 8/4) or 5.
    assert lo >= 1.0 and hi <= 5.0 and m == 2.0


def test_binomial():
    assert stats.binomial(5, 10) == pytest.approx(1.0)
    assert stats.binomial(10, 10) < 0.01 and stats.binomial(0, 0) == 1.0
