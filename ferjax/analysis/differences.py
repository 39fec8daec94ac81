"""Which differences between methods are signal: simultaneous intervals, the best set, honest settings.

Per-item scores S (N items x M methods) are compared in every pair k = (i, j), i < j, by the
mean paired difference d_k = mean_n (S_ni - S_nj). The intervals are simultaneous over the K
pairs (a studentised max-T bootstrap, the "bootstrap-t" of Efron & Tibshirani 1993, ch. 12, with
the single-step max-T of Westfall & Young 1993 as the multiplicity correction):

* resampling weights W (B, N): multinomial counts of each item in a bootstrap sample, / N, so a
  replicate's mean difference is d*_bk = W_b . x_k (one matrix product for every pair, and one W
  for every analysis variant with the same N);
* each replicate is studentised by its own standard error,
  se*_bk^2 = (W_b . x_k^2 - d*_bk^2) N / (N - 1) / N, and T*_b = max_k |d*_bk - d_k| / se*_bk;
* c = the ``level`` quantile of T*; the interval is d_k +- c sd(x_k) / sqrt(N);
* the max-T adjusted p-value is (1 + #{T*_b >= |d_k| / se_k}) / (1 + B): below 1 - level exactly
  when the interval leaves out 0 (up to the quantile's interpolation).

A pair whose items all differ by exactly 0 is ``identical`` (CAM and GradCAM on a GAP-linear
head) and a pair whose differences do not vary is ``constant``; both stay out of the maximum.
A call is "i > j" when lo > 0, "j > i" when hi < 0, and otherwise "no clear difference".

The best set (multiple comparisons with the best, Hsu 1996, from the same intervals): the top
method by mean is *clearly first* when its interval against every other method lies above 0
(an identical twin shares its place); the best set holds every method no other one beats
clearly. Because the intervals hold simultaneously, picking the top from the same data does
not inflate the error. A simulation in the issue-25 research (N = 280, correlated scores, three
and ten methods) gave a family-wise error of 0.043 and 0.036 at level 0.95.

A method's settings (EP's area and target, CAM's target) are chosen by cross-fitting
(:func:`crossfit`): images split in halves, stratified by class, each half scored with the
setting that did best on the other half, so no setting is chosen on the data it is scored on.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd


def boot_weights(n_items: int, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """(B, N) bootstrap weights: how often each item is drawn in a sample of N with replacement, / N."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_boot) / n_items


def pairs_of(m: int) -> np.ndarray:
    """(K, 2) the pairs (i, j), i < j, of m methods, in itertools.combinations order."""
    return np.array(list(itertools.combinations(range(m), 2)), int).reshape(-1, 2)


def simultaneous(scores, weights, *, level: float = 0.95) -> dict:
    """Simultaneous intervals of every pair's mean difference, for V score tables at once.

    ``scores`` (V, N, M) or (N, M), no NaN; ``weights`` (B, N) from :func:`boot_weights`.
    Returns ``pairs`` (K, 2) and, each (V, K) (or (K,)), ``diff``, ``lo``, ``hi``, ``p`` (max-T
    adjusted), ``identical``, ``constant``, and ``c`` (V,) the critical values.
    """
    s = np.asarray(scores, np.float64)
    single = s.ndim == 2
    s = s[None] if single else s
    v, n, m = s.shape
    pairs = pairs_of(m)
    x = s[:, :, pairs[:, 0]] - s[:, :, pairs[:, 1]]                       # (V, N, K)
    diff = x.mean(1)
    sd = x.std(1, ddof=1) if n > 1 else np.zeros_like(diff)
    identical = np.all(x == 0, axis=1)
    constant = ~identical & (sd <= 1e-12 * np.maximum(np.abs(diff), 1e-300))
    flat = x.transpose(1, 0, 2).reshape(n, -1)                              # (N, V K): one matmul for all
    boot = (weights @ flat).reshape(len(weights), v, -1)                     # (B, V, K)
    var = (weights @ flat**2).reshape(boot.shape) - boot**2
    se_b = np.sqrt(np.maximum(var, 0) * n / max(n - 1, 1) / n)
    live = ~(identical | constant)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(live & (se_b > 0), np.abs(boot - diff) / se_b, 0.0)    # (B, V, K)
        t_max = t.max(2, initial=0.0)                                       # (B, V); 0 with one method
        c = np.quantile(t_max, level, axis=0)                               # (V,)
        se = sd / np.sqrt(n)
        t_obs = np.where(live, np.abs(diff) / np.where(se > 0, se, 1), np.inf)
    half = np.where(live, c[:, None] * se, 0.0)
    p = (1 + np.sum(t_max[:, :, None] >= t_obs[None], axis=0)) / (1 + len(weights))
    p = np.where(identical, 1.0, np.where(constant, 1.0 / (1 + len(weights)), p))
    out = {"diff": diff, "lo": diff - half, "hi": diff + half, "p": p, "identical": identical,
           "constant": constant, "c": c}
    out = {k: a[0] for k, a in out.items()} if single else out
    out["pairs"] = pairs
    return out


def call(name_a: str, name_b: str, lo: float, hi: float, identical: bool = False) -> str:
    """The call of a pair from its interval: "a > b", "b > a", "identical" or "no clear difference"."""
    if identical:
        return "identical"
    return f"{name_a} > {name_b}" if lo > 0 else f"{name_b} > {name_a}" if hi < 0 else "no clear difference"


def pairwise(wide: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Every pair of the columns of ``wide`` (items x methods): a, b, diff = mean(a - b), lo, hi, p, call.

    Items with a missing score are left out (the same items for every pair). ``attrs`` holds the
    critical value ``c``, ``pairs`` (K) and ``items`` (N).
    """
    wide = wide.dropna()
    names = list(wide.columns)
    r = simultaneous(wide.to_numpy(np.float64), boot_weights(len(wide), n_boot, seed), level=level)
    rows = [{"a": names[i], "b": names[j], "diff": d, "lo": lo, "hi": hi, "p_maxT": p,
             "call": call(names[i], names[j], lo, hi, same)}
            for (i, j), d, lo, hi, p, same in zip(r["pairs"], r["diff"], r["lo"], r["hi"], r["p"], r["identical"])]
    out = pd.DataFrame(rows, columns=["a", "b", "diff", "lo", "hi", "p_maxT", "call"])
    out.attrs.update(c=float(r["c"]), pairs=len(rows), items=len(wide))
    return out


def best_set(result: dict, means) -> tuple[int, bool, np.ndarray]:
    """``(top, clearly_first, best)`` of one score table from its :func:`simultaneous` result.

    ``top``: the highest mean; ``clearly_first``: its interval against every non-identical method
    lies above 0; ``best`` (M,) bool: the methods no other method beats clearly.
    """
    m = len(means)
    wins, twin = np.zeros((m, m), bool), np.eye(m, dtype=bool)
    for (i, j), lo, hi, same in zip(result["pairs"], result["lo"], result["hi"], result["identical"]):
        wins[i, j], wins[j, i] = lo > 0, hi < 0
        twin[i, j] = twin[j, i] = same
    top = int(np.argmax(means))
    return top, bool(np.all(wins[top] | twin[top])), ~wins.any(0)


def best_of_table(table: pd.DataFrame, names, means) -> tuple[int, bool, np.ndarray]:
    """:func:`best_set` among ``names`` from a :func:`pairwise` table (its intervals, its critical value)."""
    index = {n: i for i, n in enumerate(names)}
    rows = table[table["a"].isin(index) & table["b"].isin(index)]
    result = {"pairs": np.array([[index[a], index[b]] for a, b in zip(rows["a"], rows["b"])], int).reshape(-1, 2),
              "lo": rows["lo"].to_numpy(), "hi": rows["hi"].to_numpy(),
              "identical": rows["call"].eq("identical").to_numpy()}
    return best_set(result, np.asarray(means, np.float64))


def crossfit(settings: pd.DataFrame, labels, *, seed: int = 0) -> tuple[np.ndarray, list, np.ndarray]:
    """Cross-fitted choice of a method's setting: ``(scores (N,), chosen per fold, fold (N,))``.

    ``settings``: items x settings, one method's per-item scores at each setting; ``labels``
    (N,) the strata (true classes). Each class's items are shuffled (``default_rng(seed)``) and
    halved; fold f's items get the setting with the best mean on the other fold.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), int)
    for g in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == g))
        fold[idx[: len(idx) // 2]] = 1
    values = settings.to_numpy(np.float64)
    honest, chosen = np.full(len(labels), np.nan), []
    for f in (0, 1):
        other = np.nanmean(np.where((fold != f)[:, None], values, np.nan), axis=0)
        best = int(np.nanargmax(other)) if np.isfinite(other).any() else 0
        chosen.append(str(settings.columns[best]))
        honest[fold == f] = values[fold == f, best]
    return honest, chosen, fold


def variant_calls(items, names, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                  chunk: int = 128) -> pd.DataFrame:
    """The best set of each analysis variant: one row per (N, M) table of ``items`` (NaN allowed).

    A variant's items with a NaN score are left out; variants with the same items share one
    weight matrix and go through :func:`simultaneous` ``chunk`` at a time. Columns: ``top``
    (highest mean), ``first`` (top and its identical twins, joined by " = "), ``clearly_first``,
    ``best_set`` (joined by " = ") and ``items``. Each variant's call is at its own simultaneous
    level; across variants the shares are descriptive, so nothing is corrected across them.
    """
    groups, weights, rows = {}, {}, [None] * len(items)
    for v, s in enumerate(items):
        ok = ~np.isnan(np.asarray(s, np.float64)).any(1)
        groups.setdefault(ok.tobytes(), []).append(v)
    for key, members in groups.items():
        ok = np.frombuffer(key, bool)
        n = int(ok.sum())
        if n < 3:   # too few items to resample: no call
            for v in members:
                rows[v] = {"top": None, "first": None, "clearly_first": False, "best_set": "", "items": n}
            continue
        w = weights.setdefault(n, boot_weights(n, n_boot, seed))
        for start in range(0, len(members), chunk):
            part = members[start:start + chunk]
            stack = np.stack([np.asarray(items[v], np.float64)[ok] for v in part])
            r = simultaneous(stack, w, level=level)
            for i, v in enumerate(part):
                one = {"pairs": r["pairs"], **{k: r[k][i] for k in ("lo", "hi", "identical")}}
                top, clear, best = best_set(one, stack[i].mean(0))
                twins = [top] + [int(b if a == top else a) for (a, b), same in zip(r["pairs"], one["identical"])
                                 if same and top in (a, b)]
                rows[v] = {"top": names[top], "first": " = ".join(names[t] for t in sorted(twins)),
                           "clearly_first": clear, "best_set": " = ".join(n_ for n_, b in zip(names, best) if b),
                           "items": n}
    return pd.DataFrame(rows)


def shares(calls: pd.DataFrame, names) -> dict:
    """Per method: the share of variants in which it is clearly first (an identical twin of the top
    shares the place), and the share in which it is in the best set of a tie at the top; and the
    share of variants whose top is a tie."""
    first = calls["first"].fillna("").str.split(" = ")
    best = calls["best_set"].fillna("").str.split(" = ")
    clear = calls["clearly_first"].to_numpy(bool)
    out = {"clearly_first": {}, "tied_first": {}, "tie_at_top": float(np.mean(~clear)) if len(calls) else None}
    for name in names:
        out["clearly_first"][name] = float(np.mean(clear & first.apply(lambda f: name in f).to_numpy(bool)))
        out["tied_first"][name] = float(np.mean(~clear & best.apply(lambda b: name in b).to_numpy(bool)))
    return out
