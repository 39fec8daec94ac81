"""Statistics for comparing methods and observers.

Percentile bootstrap intervals, paired tests between methods (Wilcoxon
signed-rank and a sign-flip permutation test) with Holm's step-down
correction, and for percent correct Wilson intervals and exact tests
(binomial, McNemar).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _st


def bootstrap_ci(values, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95, groups=None):
    """Mean of ``values`` (N, ...) over axis 0 with a percentile bootstrap interval.

    Resamples the N rows with replacement ``n_boot`` times (generator
    ``default_rng(seed)``). With ``groups`` (N,), whole groups are resampled
    instead (a cluster bootstrap, e.g. over participants). NaN rows are
    ignored. Returns ``(mean, lo, hi)``, each of shape values.shape[1:].
    """
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, len(values), (n_boot, len(values)))
        boot = np.nanmean(values[idx], axis=1)
    else:
        groups = np.asarray(groups)
        labels, inverse = np.unique(groups, return_inverse=True)
        sums = np.zeros((len(labels),) + values.shape[1:])
        np.add.at(sums, inverse, np.nan_to_num(values))
        counts = np.zeros((len(labels),) + values.shape[1:])
        np.add.at(counts, inverse, ~np.isnan(values))
        pick = rng.integers(0, len(labels), (n_boot, len(labels)))
        boot = sums[pick].sum(1) / counts[pick].sum(1)
    alpha = (1 - level) / 2
    return (np.nanmean(values, axis=0), np.quantile(boot, alpha, axis=0), np.quantile(boot, 1 - alpha, axis=0))


def permutation_test(a, b, *, n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value for the mean of the paired differences a - b.

    Under H0 each difference is as likely negative as positive; the p-value
    is (1 + #{|mean(s * d)| >= |mean(d)|}) / (1 + n_perm) with random signs
    s. Exact enumeration is used when 2^N <= n_perm.
    """
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    d = d[~np.isnan(d)]
    observed = abs(d.mean()) if len(d) else 0.0
    if len(d) == 0:
        return 1.0
    if 2 ** len(d) <= n_perm:
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
        return float(np.mean(np.abs((signs * d).mean(1)) >= observed - 1e-12))
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], (n_perm, len(d)))
    return float((1 + np.sum(np.abs((signs * d).mean(1)) >= observed - 1e-12)) / (1 + n_perm))


def wilcoxon(a, b) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired differences (zero differences dropped).

    scipy's ``wilcoxon(d, zero_method="wilcox")``: the exact null distribution
    without ties or zeros; with them, for n <= 13 differences, the exact
    sign-flip distribution of ``R+`` (the sum of the ranks of |d| over the
    positive d, average ranks for ties) over all 2^n flips,
    ``p = min(1, 2 min(P(R+ <= r), P(R+ >= r)))``, which is computed here as
    one (2^n, n) array product (scipy enumerates the same 2^n flips one
    Python call at a time: ~1 s per test); beyond 13, scipy's normal
    approximation.
    """
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    d = d[~np.isnan(d)]
    if not np.any(d != 0):
        return 1.0
    nonzero = d != 0
    magnitudes = np.abs(d[nonzero])
    if len(d) > 13 or (nonzero.all() and len(np.unique(magnitudes)) == len(magnitudes)):
        return float(_st.wilcoxon(d, zero_method="wilcox").pvalue)
    ranks = np.zeros(len(d))
    ranks[nonzero] = _st.rankdata(magnitudes)
    observed = ranks[d > 0].sum()
    flips = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1      # 1: the difference's sign flipped
    null = np.where(flips == 1, d < 0, d > 0) @ ranks
    gamma = abs(observed) * 100 * np.finfo(np.float64).eps                  # scipy's tolerance for ties in R+
    p = 2 * min(np.mean(null <= observed + gamma), np.mean(null >= observed - gamma))
    return float(min(p, 1.0))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values: p_(i) * (m - i + 1), made monotone, capped at 1."""
    p = np.asarray(pvalues, np.float64)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def mcnemar(a_correct, b_correct) -> dict:
    """Exact McNemar test on paired binary outcomes (the same trials, two observers).

    With b01 = #(a wrong, b right) and b10 = #(a right, b wrong), the
    two-sided p-value is the binomial test of b10 out of b01 + b10 at 1/2.
    """
    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    b10, b01 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    p = 1.0 if b10 + b01 == 0 else float(_st.binomtest(b10, b10 + b01, 0.5).pvalue)
    return {"a_only": b10, "b_only": b01, "p": p}


def binomial(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial p-value of k successes in n trials against rate p."""
    return float(_st.binomtest(int(k), int(n), p).pvalue) if n else 1.0


def wilson(k, n, z: float = 1.959964):
    """Wilson score interval (lo, hi) for k successes in n: (p + z^2/2n +- z sqrt(p(1-p)/n
    + z^2/4n^2)) / (1 + z^2/n), p = k/n; NaN where n = 0. Scalars in -> floats out."""
    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p, d = k / n, 1 + z * z / n
        mid, half = (p + z * z / (2 * n)) / d, z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    lo, hi = np.clip(mid - half, 0, 1), np.clip(mid + half, 0, 1)
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)
