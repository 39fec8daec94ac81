"""Rank explanation methods by how well their maps fit the human maps.

Every method's map of an image is scored against the human map of the same
image (and, at the reference study's level, per ordered pair), with the
metrics of :mod:`ferjax.analysis.similarity`. Baselines go through exactly the same
scoring, so that a method has to beat them to mean anything:

* ``center``: an isotropic Gaussian at the frame centre, SD = size / 4;
* ``face prior``: the mean of the *other* images' min-max normalised human
  maps (leave-one-out, so an image's own clicks never score it);
* ``shuffled``: another image's human map (a seeded derangement).

The human noise ceiling (split-half reliability) is the upper reference.
Intervals are percentile bootstraps over images; methods are compared with
the paired Wilcoxon signed-rank and sign-flip permutation tests against the
best method, Holm-corrected (``ferjax.analysis.stats``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferjax.analysis import similarity, stats
from ferjax.plumbing import devices

TOPS = (0.05, 0.1, 0.2, 0.3)
PRIMARY = "dice@0.1"


def baselines(human_maps, *, seed: int = 0) -> dict:
    """Baseline maps, each (N, H, W), for human maps (N, H, W)."""
    human_maps = np.asarray(human_maps, np.float64)
    n, h, w = human_maps.shape
    return {"center": np.broadcast_to(center(h, w), (n, h, w)).astype(np.float32),
            "face prior": face_prior(human_maps).astype(np.float32),
            "shuffled": human_maps[derangement(n, seed)].astype(np.float32)}


def center(h: int, w: int) -> np.ndarray:
    """An isotropic Gaussian at the frame centre, SD = h / 4: (h, w)."""
    y, x = np.mgrid[0:h, 0:w]
    sd = h / 4
    return np.exp(-(((x - (w - 1) / 2) ** 2) + ((y - (h - 1) / 2) ** 2)) / (2 * sd**2))


def face_prior(human_maps) -> np.ndarray:
    """Leave-one-out mean of the other images' min-max normalised human maps: (N, H, W)."""
    m = np.asarray(human_maps, np.float64)
    lo = m.min((1, 2), keepdims=True)
    span = m.max((1, 2), keepdims=True) - lo
    norm = np.where(span > 0, (m - lo) / np.where(span > 0, span, 1), 0)
    return (norm.sum(0, keepdims=True) - norm) / max(len(m) - 1, 1)


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A seeded permutation of 0..n-1 that moves every index (n > 1): whose map the shuffled baseline uses."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    while n > 1 and (perm == np.arange(n)).any():
        perm = rng.permutation(n)
    return perm


def score(method_maps: dict, human_maps, points=None, valid=None, *, tops=TOPS) -> pd.DataFrame:
    """Per-map scores of every method against the human maps.

    Args:
      method_maps: name -> (N, H, W) maps, at the human maps' resolution.
      human_maps: (N, H, W).
      points, valid: optional (N, K, 2) integer click positions (x, y) and
        (N, K) bool validity, for NSS and AUC-Judd.
    Returns a long table: method, item (0..N-1), metric, value. Metrics are
    dice@t and iou@t for each t in ``tops``, spearman, pearson, kld (human
    map as the reference distribution), sim, and with points nss and auc_judd.
    """
    rows = []
    # items are independent: split them over the devices (padding rows dropped below)
    if points is not None and valid is None:
        valid = np.ones(np.shape(points)[:2], bool)
    n, _, human, *clicks = devices.split_batch(None, {}, np.asarray(human_maps, np.float32),
                                               *(() if points is None else (points, valid)))
    for name, maps in method_maps.items():
        maps = devices.split_batch(None, {}, np.asarray(maps, np.float32))[2]
        dices, ious = similarity.dice_iou(maps, human, tuple(tops))
        values = {f"dice@{t:g}": d for t, d in zip(tops, dices)}
        values.update({f"iou@{t:g}": v for t, v in zip(tops, ious)})
        values.update(spearman=similarity.spearman(maps, human), pearson=similarity.pearson(maps, human),
                      kld=similarity.kld(maps, human), sim=similarity.sim(maps, human))
        if points is not None:
            values.update(nss=similarity.nss(maps, *clicks), auc_judd=similarity.auc_judd(maps, *clicks))
        for metric, v in values.items():
            v = np.asarray(v, np.float64)[:n]
            rows.append(pd.DataFrame({"method": name, "item": np.arange(len(v)), "metric": metric, "value": v}))
    return pd.concat(rows, ignore_index=True)


def summarise(scores: pd.DataFrame, *, ceiling: float | None = None, n_boot: int = 2000,
              seed: int = 0, primary: str = PRIMARY) -> pd.DataFrame:
    """Mean and bootstrap 95% interval of each (method, metric), ranked, with paired tests.

    Each method is tested against the best method on the same metric
    (paired over items; Wilcoxon and permutation p-values, Holm-corrected
    within the metric). With ``ceiling`` the Spearman rows also get the
    Harmonization alignment, mean Spearman / ceiling. Rows are sorted by
    metric, then by mean (descending; ascending for kld, where lower is better).
    """
    out = []
    for metric, table in scores.groupby("metric", sort=True):
        wide = table.pivot(index="item", columns="method", values="value")
        mean, lo, hi = stats.bootstrap_ci(wide.to_numpy(), n_boot=n_boot, seed=seed)
        lower_better = metric == "kld"
        best = wide.columns[np.nanargmin(mean) if lower_better else np.nanargmax(mean)]
        p_w = [stats.wilcoxon(wide[m], wide[best]) if m != best else np.nan for m in wide.columns]
        p_p = [stats.permutation_test(wide[m], wide[best], seed=seed) if m != best else np.nan
               for m in wide.columns]
        others = [i for i, m in enumerate(wide.columns) if m != best]
        holm_w, holm_p = np.full(len(wide.columns), np.nan), np.full(len(wide.columns), np.nan)
        if others:
            holm_w[others] = stats.holm([p_w[i] for i in others])
            holm_p[others] = stats.holm([p_p[i] for i in others])
        frame = pd.DataFrame({"metric": metric, "method": wide.columns, "mean": mean, "lo": lo, "hi": hi,
                              "n": wide.notna().sum().to_numpy(), "vs": best, "p_wilcoxon_holm": holm_w,
                              "p_permutation_holm": holm_p})
        if metric == "spearman" and ceiling:
            frame["alignment"] = frame["mean"] / ceiling
        out.append(frame.sort_values("mean", ascending=lower_better, kind="stable"))
    result = pd.concat(out, ignore_index=True)
    result["rank"] = result.groupby("metric").cumcount() + 1
    return result

