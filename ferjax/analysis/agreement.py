"""Trial-level agreement between observers: error consistency and performance concordance.

Accuracy alone cannot tell whether two observers (people, networks) use the
same strategy; whether they get the *same trials* wrong can. Observers are
given as a correct/wrong matrix ``R`` (P, N): observer p's outcome on item n
(a stimulus), with a validity mask ``V`` (P, N) for items an observer did not
see. All functions take optional non-negative item weights ``w`` (..., N)
(bootstrap resampling counts), so that intervals are one batched pass.

**Error consistency** (Geirhos, Meding & Wichmann, "Beyond accuracy:
quantifying trial-by-trial behaviour of CNNs and humans by measuring error
consistency", NeurIPS 2020; the definitions of bethgelab's ``model-vs-human``
toolbox). For observers i and j over the items both saw, with accuracies
p_i, p_j on those items::

    c_obs = (1 / n) sum_t [r_i(t) = r_j(t)]             observed consistency
    c_exp = p_i p_j + (1 - p_i)(1 - p_j)                two independent observers
    kappa = (c_obs - c_exp) / (1 - c_exp)               Cohen's kappa

kappa = 1 when c_obs = 1 (the toolbox's convention, which also covers
c_exp = 1); 0 means no more shared errors than the two accuracies explain by
chance; -1 when two observers who are each right half the time are never
right together.

**Performance concordance** (errors aggregated over people before comparing,
which cancels their trial-to-trial internal noise): the Pearson correlation
across items of the model's per-item accuracy m_n with people's mean
per-item accuracy h_n = mean_p R_pn, beside the people's own split-half
concordance (the correlation of h over two random halves of the people,
Spearman-Brown corrected: 2r / (1 + r)) as its ceiling; the noise-corrected
value r(m, h) / sqrt(ceiling_h ceiling_m) follows Rajalingham et al.
(J. Neurosci. 2018), with ceiling_m = 1 for a deterministic model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.analysis import correlation

__all__ = ["kappa", "pairwise", "concordance", "split_half_concordance", "resample_weights"]


@jax.jit
def _pairwise(r, v, w):
    """Agreement counts of every observer pair: (..., P, P) c_obs, p_i (given j), p_j (given i)."""
    r, v, w = (jnp.asarray(a, jnp.float32) for a in (r, v, w))
    hit, miss = r * v, (1 - r) * v
    # sum_t w_t a_i(t) b_j(t) for every pair: one (P, N) x (N, P) product per weight vector
    prod = lambda a, b: jnp.einsum("...n,in,jn->...ij", w, a, b, precision="highest")  # noqa: E731
    shared = prod(v, v)
    both = prod(hit, hit) + prod(miss, miss)
    p_i = prod(hit, v)                          # observer i's hits on the items both saw
    safe = jnp.where(shared > 0, shared, 1.0)
    return both / safe, p_i / safe, jnp.swapaxes(p_i, -1, -2) / safe, shared


def _kappa(c_obs, p_i, p_j):
    c_exp = p_i * p_j + (1 - p_i) * (1 - p_j)
    k = (c_obs - c_exp) / jnp.where(c_exp < 1, 1 - c_exp, 1.0)
    return jnp.where(c_obs >= 1, 1.0, k)


def pairwise(correct, valid=None, weights=None):
    """Error consistency of every pair of observers.

    Args:
      correct: (P, N) bool, observer p right on item n.
      valid: (P, N) bool, observer p saw item n (default: all).
      weights: (N,) or (B, N) item weights (default: ones), e.g. from
        :func:`resample_weights`.

    Returns:
      dict of (..., P, P) arrays: ``kappa``, ``c_obs``, ``c_exp`` and
      ``shared`` (the weighted count of items both saw; kappa is nan where
      it is 0). The diagonal compares an observer with itself.
    """
    r = np.asarray(correct, bool)
    v = np.ones_like(r) if valid is None else np.asarray(valid, bool)
    w = np.ones(r.shape[-1], np.float32) if weights is None else np.asarray(weights, np.float32)
    c_obs, p_i, p_j, shared = _pairwise(r, v, w)
    k = jnp.where(shared > 0, _kappa(c_obs, p_i, p_j), jnp.nan)
    return {"kappa": np.asarray(k, np.float64), "c_obs": np.asarray(c_obs, np.float64),
            "c_exp": np.asarray(p_i * p_j + (1 - p_i) * (1 - p_j), np.float64),
            "shared": np.asarray(shared, np.float64)}


def kappa(a, b, weights=None) -> np.ndarray:
    """Error consistency of two observers on the same trials, paired along the last axis.

    a, b: (..., N) bool outcomes of the same N trials (broadcast);
    weights: optional (..., N). Returns (...) kappa (see module docstring).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = np.ones(np.broadcast_shapes(a.shape, b.shape)) if weights is None else np.asarray(weights, np.float64)
    n = w.sum(-1)
    c_obs = (w * (a == b)).sum(-1) / n
    p_a, p_b = (w * a).sum(-1) / n, (w * b).sum(-1) / n
    return np.asarray(_kappa(c_obs, p_a, p_b), np.float64)


def resample_weights(n_items: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n_items) float32 counts of a bootstrap over items (``default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_items, (n_boot, n_items))
    return np.stack([np.bincount(i, minlength=n_items) for i in idx]).astype(np.float32)


def concordance(model_accuracy, people_accuracy, weights=None) -> np.ndarray:
    """Pearson correlation across items of the model's and people's per-item accuracies.

    model_accuracy, people_accuracy: (N,) in [0, 1]; weights (N,) or (B, N).
    nan where either is constant under the weights.
    """
    x = np.asarray(model_accuracy, np.float64)
    y = np.asarray(people_accuracy, np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return correlation.pearson(x, y, w)


def split_half_concordance(correct, valid=None, *, n_splits: int = 50, seed: int = 0) -> dict:
    """People's own concordance: per-item accuracy of two random halves of the observers.

    For each split (observers permuted with ``default_rng(seed)``, first half
    against second), r = Pearson(h_A, h_B) over the items both halves saw,
    then Spearman-Brown 2r / (1 + r). Returns ``r`` (mean raw), ``spearman_brown``
    (mean corrected) and ``sd`` (of the corrected values over splits).
    """
    r = np.asarray(correct, np.float64)
    v = np.ones_like(r, bool) if valid is None else np.asarray(valid, bool)
    p = len(r)
    if p < 2:
        return {"r": float("nan"), "spearman_brown": float("nan"), "sd": float("nan"), "splits": 0}
    rng = np.random.default_rng(seed)
    raw = []
    for _ in range(n_splits):
        perm = rng.permutation(p)
        halves = perm[: p // 2], perm[p // 2:]
        counts = [v[h].sum(0) for h in halves]
        seen = (counts[0] > 0) & (counts[1] > 0)
        h_a, h_b = ((r[h] * v[h]).sum(0)[seen] / c[seen] for h, c in zip(halves, counts))
        with np.errstate(invalid="ignore", divide="ignore"):
            raw.append(float(correlation.pearson(h_a, h_b)))
    raw = np.asarray(raw)
    sb = 2 * raw / (1 + raw)
    return {"r": float(np.nanmean(raw)), "spearman_brown": float(np.nanmean(sb)),
            "sd": float(np.nanstd(sb)), "splits": n_splits}


def outcomes(trials, items=None):
    """A trial table -> ``(R, V, participants, items)``: (P, N) correct and seen matrices.

    ``trials`` has columns participant, filename, correct and count; a trial
    is correct only if answered correctly after at least one click (the
    reference's scoring). ``items`` fixes the column order (default: sorted
    filenames). A participant who saw an item twice keeps the last trial.
    """
    people = sorted(trials["participant"].astype(str).unique())
    items = sorted(trials["filename"].unique()) if items is None else list(items)
    row = {p: i for i, p in enumerate(people)}
    col = {f: j for j, f in enumerate(items)}
    r, v = np.zeros((len(people), len(items)), bool), np.zeros((len(people), len(items)), bool)
    hit = trials["correct"].to_numpy(bool) & (trials["count"].to_numpy() > 0)
    for p, f, h in zip(trials["participant"].astype(str), trials["filename"], hit):
        if f in col:
            r[row[p], col[f]], v[row[p], col[f]] = h, True
    return r, v, people, items


def interval(boot, point, level: float = 0.95) -> dict:
    """``{"mean": point, "ci95": [lo, hi]}`` from bootstrap values (B, ...) (percentile, nan-aware)."""
    a = (1 - level) / 2
    lo, hi = np.nanquantile(boot, a, axis=0), np.nanquantile(boot, 1 - a, axis=0)
    return {"mean": float(point), "ci95": [float(lo), float(hi)]}


def people_consistency(correct, valid=None, *, n_boot: int = 2000, seed: int = 0, per_pair: bool = False) -> dict:
    """Person-to-person error consistency: the mean kappa over all pairs of observers.

    With a percentile bootstrap over items (the same resampled items for every
    pair). Returns mean, ci95, the number of pairs and the range over pairs
    (and with ``per_pair`` each pair's kappa, in ``np.triu_indices`` order).
    """
    r = np.asarray(correct, bool)
    p = len(r)
    if p < 2:
        return {"mean": None, "ci95": [None, None], "pairs": 0}
    iu = np.triu_indices(p, 1)
    point = pairwise(r, valid)["kappa"][iu]
    boot = pairwise(r, valid, resample_weights(r.shape[1], n_boot, seed))["kappa"][:, iu[0], iu[1]]
    out = {**interval(np.nanmean(boot, -1), np.nanmean(point)), "pairs": int(len(point)),
           "min": float(np.nanmin(point)), "max": float(np.nanmax(point))}
    if per_pair:
        out["per_pair"] = [float(k) for k in point]
    return out


#: The reference study's pair accuracies (Park & Wallraven 2021, 22 people): hardest and easiest ordered pairs.
REFERENCE_PAIRS = {"hardest": 0.555, "easiest": 0.991}


def image_difficulty(trials, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """How much people share which faces they find hard, from a trial table (see :func:`outcomes`).

    Returns ``error_consistency`` (person to person, :func:`people_consistency`),
    ``concordance`` (people's per-image accuracy over two random halves of
    the people, :func:`split_half_concordance`), ``image_percent_correct``
    (the spread of per-image percent correct) and ``pair_range`` (the
    hardest and easiest ordered pair beside the reference study's).
    """
    r, v, _, _ = outcomes(trials)
    per_image = (r & v).sum(0) / np.maximum(v.sum(0), 1)
    hit = trials["correct"].to_numpy(bool) & (trials["count"].to_numpy() > 0)
    pairs = trials.assign(_hit=hit).groupby(["true", "foil"])["_hit"].mean()
    q = np.quantile(per_image, [0.0, 0.1, 0.5, 0.9, 1.0])
    return {
        "error_consistency": people_consistency(r, v, n_boot=n_boot, seed=seed),
        "concordance": split_half_concordance(r, v, seed=seed),
        "image_percent_correct": {"sd": float(per_image.std(ddof=1)) if len(per_image) > 1 else 0.0,
                                  "min": float(q[0]), "q10": float(q[1]), "median": float(q[2]),
                                  "q90": float(q[3]), "max": float(q[4])},
        "pair_range": {"hardest": float(pairs.min()), "easiest": float(pairs.max()),
                       "reference": dict(REFERENCE_PAIRS)},
    }


def network_vs_people(correct, valid, model, seen=None, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Trial-level agreement of a network with each person, beside the people's own.

    Args:
      correct, valid: (P, N) people's outcomes and which items each saw.
      model: (N,) bool, the network right on each item (the full stimulus).
      seen: optional (P, N) bool, the network right on what person p had
        uncovered when choosing item n.
    Returns ``error_consistency`` with ``people`` (every pair of people: the
    human-to-human ceiling), ``network`` (the network against each person;
    ``per_participant`` kappas, their mean with a bootstrap interval over
    items) and ``network_seen`` (the same on what each person saw), and
    ``concordance``: the Pearson r across items of the network's correctness
    with people's mean per-item accuracy (errors aggregated over people
    first), with an interval, its noise-corrected value r / sqrt(c_people
    c_network) (c_network = 1 for the deterministic full-stimulus answers; on
    people's views, the network's own split-half value), and the people's
    split-half ceiling.
    """
    r, v = np.asarray(correct, bool), np.asarray(valid, bool)
    m = np.asarray(model, bool)
    w = resample_weights(r.shape[1], n_boot, seed)

    def against(other):
        """Per-person kappa with ``other`` (P, N), point and (B, P) bootstrap."""
        point = kappa(r, other, v.astype(np.float64))
        boot = kappa(r[None], other[None], (w[:, None, :] * v[None]).astype(np.float64))
        return {**interval(np.nanmean(boot, -1), np.nanmean(point)),
                "per_participant": [float(k) for k in point], "min": float(np.nanmin(point)),
                "max": float(np.nanmax(point))}

    out = {"people": people_consistency(r, v, n_boot=n_boot, seed=seed, per_pair=True),
           "network": against(np.broadcast_to(m, r.shape))}
    people_acc = (r & v).sum(0) / np.maximum(v.sum(0), 1)
    ceiling = split_half_concordance(r, v, seed=seed)
    conc = {"people_split_half": ceiling}

    def concord(model_acc, model_ceiling=1.0):
        point = float(concordance(model_acc, people_acc))
        res = interval(concordance(model_acc, people_acc, w), point)
        both = ceiling["spearman_brown"] * model_ceiling
        res["noise_corrected"] = float(point / np.sqrt(both)) if both > 0 else None
        return res

    conc["network"] = concord(m.astype(np.float64))
    if seen is not None:
        s = np.asarray(seen, bool)
        out["network_seen"] = against(s)
        # the network's answers on people's views vary with the view: its own split-half ceiling
        own = split_half_concordance(s, v, seed=seed)["spearman_brown"]
        conc["network_seen"] = concord((s & v).sum(0) / np.maximum(v.sum(0), 1), own)
        conc["network_seen"]["own_split_half"] = own
    return {"error_consistency": out, "concordance": conc}
