"""Human-vs-model map comparison metrics (Harmonization and saliency-benchmark conventions).

Maps are (..., H, W); each function flattens the last two axes into N = H * W pixels,
broadcasts its inputs over the leading (batch) axes and returns one value per map, shape
(...). Pure JAX and jitted (vmap-able; rank/top-k parts have zero gradient a.e.), in the
input's float dtype (float32 unless jax_enable_x64).

Argument order: for kld (asymmetric) and the point metrics the FIRST argument is the
model / predicted map and the SECOND the human (ground-truth) map or click points, as in
the MIT/Tuebingen benchmark (``KLdiv(saliencyMap, fixationMap)``) and pysaliency
(``MIT_KLDiv(saliency_map_1, saliency_map_2)``, map 2 the empirical one).

References: Fel, Felipe, Linsley & Serre (NeurIPS 2022), "Harmonizing the object
recognition strategies of deep neural networks with humans"; Bylinskii et al. (TPAMI
2019), "What do different evaluation metrics tell us about saliency models?" and the
MIT/Tuebingen benchmark code; pysaliency (``pysaliency.metrics``, ``general_roc``).
"""

import functools
from functools import partial

import jax
import jax.numpy as jnp

from ferjax.analysis import correlation

#: Matlab's ``eps`` used as regulariser by the MIT/Tuebingen KL code and pysaliency.MIT_KLDiv.
EPS = 2.2204e-16


def _float(x):
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


def _flat(x):
    """(..., H, W) -> (..., H * W)."""
    x = _float(x)
    if x.ndim < 2:
        raise ValueError(f"maps must have shape (..., H, W), got {x.shape}")
    return x.reshape(x.shape[:-2] + (x.shape[-2] * x.shape[-1],))


def _pair(a, b):
    """Flatten two maps and broadcast them to a common (..., N)."""
    a, b = _flat(a), _flat(b)
    shape, dtype = jnp.broadcast_shapes(a.shape, b.shape), jnp.result_type(a.dtype, b.dtype)
    return jnp.broadcast_to(a, shape).astype(dtype), jnp.broadcast_to(b, shape).astype(dtype)


@jax.jit
def top_mask(a, top=0.1):
    """Boolean mask of each map's top ``top`` fraction of pixels.

    a: (..., H, W) -> bool (..., H, W) with exactly k = round(top * H * W) True pixels per
    map (``jnp.round``: half to even; k clipped to [0, H * W]). Pixels are ordered by value,
    descending; ties are broken by a stable sort, so among equal values the one with the
    lower row-major index (r * W + c) is kept. This is the top-10% binarisation of
    Harmonization (Fel et al. 2022) with an exact pixel count. ``top`` may be traced.
    """
    a = _float(a)
    flat = _flat(a)
    n = flat.shape[-1]
    rank = correlation.ranks(flat)[0]  # position in the descending order, ties by index
    k = jnp.clip(jnp.round(jnp.asarray(top, flat.dtype) * n), 0, n)
    return (rank < k).reshape(a.shape)


def _overlap(a, b, top):
    ma, mb = top_mask(a, top), top_mask(b, top)
    ma, mb = jnp.broadcast_arrays(ma, mb)
    size = lambda m: m.sum((-2, -1)).astype(jnp.float32)
    return size(ma & mb), size(ma), size(mb)


@jax.jit
def dice(a, b, *, top=0.1):
    """Dice of the top-``top`` pixel sets: 2 |A n B| / (|A| + |B|).

    a, b: (..., H, W), broadcast over leading axes -> (...). A = top_mask(a, top),
    B = top_mask(b, top) (exactly k pixels each). Range [0, 1]; nan when k = 0.
    Reference: Fel et al. (NeurIPS 2022), Dice on the top 10% of pixels.
    """
    inter, na, nb = _overlap(a, b, top)
    return 2 * inter / (na + nb)


@jax.jit
def iou(a, b, *, top=0.1):
    """Intersection over union of the top-``top`` pixel sets: |A n B| / |A u B|.

    a, b: (..., H, W), broadcast -> (...). A, B as in ``dice``; |A u B| = |A| + |B| - |A n B|.
    Range [0, 1]; nan when k = 0. Reference: Fel et al. (NeurIPS 2022), IoU on the top 10%.
    """
    inter, na, nb = _overlap(a, b, top)
    return inter / (na + nb - inter)


@functools.partial(jax.jit, static_argnames="tops")
def dice_iou(a, b, tops=(0.05, 0.1, 0.2, 0.3)):
    """``(dice, iou)``, each (len(tops), ...): :func:`dice` and :func:`iou` at several ``tops``.

    Equal to calling them per top, but each map's pixel ranking (two sorts)
    is computed once for all the top fractions.
    """
    a, b = jnp.broadcast_arrays(_float(a), _float(b))
    ra, rb = correlation.ranks(_flat(a))[0], correlation.ranks(_flat(b))[0]
    n = ra.shape[-1]
    dices, ious = [], []
    for top in tops:
        k = jnp.clip(jnp.round(jnp.asarray(top, a.dtype) * n), 0, n)
        ma, mb = ra < k, rb < k
        inter = (ma & mb).sum(-1).astype(jnp.float32)
        na, nb = ma.sum(-1).astype(jnp.float32), mb.sum(-1).astype(jnp.float32)
        dices.append(2 * inter / (na + nb))
        ious.append(inter / (na + nb - inter))
    return jnp.stack(dices), jnp.stack(ious)


@jax.jit
def pearson(a, b):
    """Pearson correlation coefficient (CC) over pixels.

    CC = sum (a - mean a)(b - mean b) / sqrt(sum (a - mean a)^2 sum (b - mean b)^2).
    a, b: (..., H, W), broadcast -> (...). Range [-1, 1]; nan for a constant map
    (pysaliency.metrics.CC returns 0 when only the first map is constant).
    Reference: CC of the MIT/Tuebingen benchmark (Bylinskii et al. 2019), pysaliency.metrics.CC.
    """
    return correlation.pearson(*_pair(a, b))


@jax.jit
def spearman(a, b):
    """Spearman rank correlation: Pearson correlation of the pixels' average ranks.

    rho = CC(rank(a), rank(b)), ranks 1..N along the flattened map, ties given their
    average rank (as scipy.stats.rankdata(method='average'); scipy.stats.spearmanr).
    a, b: (..., H, W), broadcast -> (...). Range [-1, 1]; nan for a constant map.
    Reference: Fel et al. (NeurIPS 2022), human-model Spearman on ClickMe maps.
    """
    return correlation.spearman(*_pair(a, b))


def _density(x):
    """pysaliency.convert_saliency_map_to_density(minimum_value=0) on (..., N): shift by
    -min if min < 0, divide by the sum; an all-zero map becomes uniform."""
    x = x - jnp.minimum(x.min(-1, keepdims=True), 0)
    total = x.sum(-1, keepdims=True)
    safe = jnp.where(total > 0, total, 1)
    return jnp.where(total > 0, x / safe, jnp.ones_like(x) / x.shape[-1])


@jax.jit
def kld(p, q):
    """KL divergence of the human map q from the model map p (MIT/Tuebingen convention).

    KL = sum_i q_i * log(eps + q_i / (p_i + eps)),  eps = 2.2204e-16,
    with p = model / predicted saliency map and q = human / ground-truth map, both first
    normalised to sum 1 (shifted by -min if negative; an all-zero map becomes uniform).
    p, q: (..., H, W), broadcast -> (...). >= 0 (up to eps), 0 for identical maps; lower
    is better. Reference: MIT benchmark ``KLdiv(saliencyMap, fixationMap)`` and
    pysaliency.metrics.MIT_KLDiv(saliency_map_1=p, saliency_map_2=q).
    """
    p, q = _pair(p, q)
    p, q = _density(p), _density(q)
    return (q * jnp.log(EPS + q / (p + EPS))).sum(-1)


@jax.jit
def sim(p, q):
    """Similarity (histogram intersection): SIM = sum_i min(p_i, q_i).

    p (model), q (human): (..., H, W), broadcast -> (...), each normalised to sum 1 as in
    ``kld`` (pysaliency.metrics.SIM; the MIT Matlab code additionally min-max rescales each
    map to [0, 1] before dividing by the sum, which differs only for maps with min > 0).
    Range [0, 1], 1 for identical maps. Reference: Bylinskii et al. (2019), pysaliency.
    """
    p, q = _pair(p, q)
    return jnp.minimum(_density(p), _density(q)).sum(-1)


def _points(smap, points, valid):
    """Broadcast (..., H, W) maps, (..., K, 2) (x, y) points and (..., K) masks together;
    returns the maps (B..., N), flat pixel indices y * W + x (B..., K) and validity (B..., K)."""
    smap = _float(smap)
    w = smap.shape[-1]
    points = jnp.asarray(points).astype(jnp.int32)
    if points.ndim < 2 or points.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., K, 2), got {points.shape}")
    valid = jnp.ones(points.shape[:-1], bool) if valid is None else jnp.asarray(valid, bool)
    flat = _flat(smap)
    idx = points[..., 1] * w + points[..., 0]
    lead = jnp.broadcast_shapes(flat.shape[:-1], idx.shape[:-1], valid.shape[:-1])
    k = jnp.broadcast_shapes(idx.shape[-1:], valid.shape[-1:])
    return (jnp.broadcast_to(flat, lead + flat.shape[-1:]), jnp.broadcast_to(idx, lead + k),
            jnp.broadcast_to(valid, lead + k))


@jax.jit
def nss(smap, points, valid=None):
    """Normalised scanpath saliency: mean over the valid points of the z-scored map.

    NSS = (1 / K) sum_k (S[y_k, x_k] - mean S) / std S, std the population std (ddof=0;
    no division when std = 0), as pysaliency.metrics.NSS (averaged over fixations); the
    MIT Matlab code uses ddof=1. smap: (..., H, W) model map; points: (..., K, 2) integer
    (x, y) = (column, row) human click / fixation coordinates, in range; valid: optional
    (..., K) bool, False entries are padding and ignored; all broadcast -> (...). nan if no
    point is valid.
    """
    flat, idx, valid = _points(smap, points, valid)
    std = flat.std(-1, keepdims=True)
    z = (flat - flat.mean(-1, keepdims=True)) / jnp.where(std > 0, std, 1)
    vals = jnp.take_along_axis(z, idx, axis=-1)
    return jnp.where(valid, vals, 0).sum(-1) / valid.sum(-1)


def _auc1(s, idx, valid):
    n, dtype = s.shape[0], s.dtype
    pos = s[idx]
    fixated = jnp.zeros(n, jnp.int32).at[idx].max(valid.astype(jnp.int32)) > 0
    neg = jnp.sort(jnp.where(fixated, -jnp.inf, s))            # unfixated pixels only
    pos_sorted = jnp.sort(jnp.where(valid, pos, -jnp.inf))
    thr = jnp.sort(jnp.where(valid, pos, jnp.inf))[::-1]        # descending; padding -> +inf
    n_pos, n_neg = valid.sum(), n - fixated.sum()
    tp = (idx.shape[0] - jnp.searchsorted(pos_sorted, thr, side="left")) / n_pos
    fp = (n - jnp.searchsorted(neg, thr, side="left")) / n_neg
    ends = lambda r: jnp.concatenate([jnp.zeros(1, dtype), r.astype(dtype), jnp.ones(1, dtype)])
    tp, fp = ends(tp), ends(fp)
    return ((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1])).sum() / 2


@jax.jit
def auc_judd(smap, points, valid=None):
    """AUC-Judd: area under the ROC curve thresholded at the saliency of each fixation.

    For each threshold t in {S[y_k, x_k]} (valid points k): TPR(t) = #{k : S_k >= t} / K
    over the fixations (duplicates counted), FPR(t) = #{unfixated pixels j : S_j >= t} /
    #{unfixated pixels}; the points, with (0, 0) and (1, 1) added, are joined by the
    trapezoid rule. Equals pysaliency ``general_roc(positives, unfixated, judd=1)`` and the
    MIT ``AUC_Judd`` (without its random jitter) for distinct fixated pixels.
    smap: (..., H, W) model map; points (..., K, 2) integer (x, y) human points; valid
    optional (..., K) bool padding mask; broadcast -> (...). 0.5 is chance, 1 perfect.
    """
    flat, idx, valid = _points(smap, points, valid)
    return jnp.vectorize(_auc1, signature="(n),(k),(k)->()")(flat, idx, valid)


@partial(jax.jit, static_argnames="axis")
def alignment(spearman_values, ceiling, axis=None):
    """Harmonization human-alignment score: mean Spearman rho divided by the noise ceiling.

    alignment = mean(spearman_values, axis) / ceiling, with spearman_values the per-image
    human-model Spearman correlations (e.g. ``spearman(model_maps, human_maps)``, shape
    (n_images,) or (..., n_images) with axis=-1) and ceiling the humans' own inter-rater
    Spearman agreement (0.6575 for ClickMe in Fel et al., NeurIPS 2022). 1 means the model
    agrees with humans as well as humans agree with each other.
    """
    return jnp.mean(_float(spearman_values), axis=axis) / ceiling
