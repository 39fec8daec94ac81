"""Tests for ferjax.analysis.similarity against hand counts, numpy/scipy references and pysaliency."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import missing_reference
from scipy import stats

from ferjax.analysis import correlation
from ferjax.analysis import similarity as C

TOL = dict(rtol=1e-5, atol=1e-5)
H, W = 12, 10


def _maps(seed, n=None, ties=False):
    rng = np.random.default_rng(seed)
    shape = (H, W) if n is None else (n, H, W)
    x = rng.integers(0, 5, shape) if ties else rng.random(shape)
    return x.astype(np.float32)


def _pts(seed, k=7):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, W, k), rng.integers(0, H, k)], -1)


# ---- independent numpy / scipy references -------------------------------------------

def np_top(a, top):
    flat = a.ravel()
    k = int(np.round(top * flat.size))
    order = np.lexsort((np.arange(flat.size), -flat))  # value desc, index asc
    m = np.zeros(flat.size, bool)
    m[order[:k]] = True
    return m


def np_density(x):
    x = np.asarray(x, np.float64).ravel()
    x = x - min(x.min(), 0)
    return x / x.sum() if x.sum() > 0 else np.full(x.size, 1 / x.size)


def np_kld(p, q):
    p, q = np_density(p), np_density(q)
    return float(np.sum(q * np.log(2.2204e-16 + q / (p + 2.2204e-16))))


def np_nss(s, pts):
    s = np.asarray(s, np.float64)
    z = (s - s.mean()) / s.std()
    return float(np.mean([z[y, x] for x, y in pts]))


def np_auc_judd(s, pts):
    s = np.asarray(s, np.float64)
    fixated = np.zeros(s.shape, bool)
    for x, y in pts:
        fixated[y, x] = True
    pos = np.array([s[y, x] for x, y in pts])
    neg = s[~fixated]
    tpr, fpr = [0.0], [0.0]
    for t in sorted(pos, reverse=True):
        tpr.append(np.sum(pos >= t) / len(pos))
        fpr.append(np.sum(neg >= t) / len(neg))
    tpr.append(1.0)
    fpr.append(1.0)
    return float(sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(tpr) - 1)))


# ---- hand-computable cases ------------------------------------------------------------

def test_top_mask_4x4_by_hand():
    a = jnp.arange(16.0).reshape(4, 4)
    # k = round(0.25 * 16) = 4: the last row holds the 4 largest values
    np.testing.assert_array_equal(C.top_mask(a, 0.25), np.arange(16).reshape(4, 4) >= 12)
    # ties: all equal -> the first k pixels in row-major order
    m = C.top_mask(jnp.ones((4, 4)), 0.1)  # k = round(1.6) = 2
    assert int(m.sum()) == 2 and bool(m[0, 0]) and bool(m[0, 1])
    tied = jnp.array([[0, 5, 5, 5], [5, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 9.0]])
    np.testing.assert_array_equal(np.flatnonzero(C.top_mask(tied, 3 / 16)), [1, 2, 15])


def test_dice_iou_4x4_by_hand():
    a = jnp.arange(16.0).reshape(4, 4)               # top 4: pixels 12..15
    b = jnp.zeros((4, 4)).at[3, 2:].set(1).at[0, :2].set(1)  # top 4: 0, 1, 14, 15
    assert float(C.dice(a, b, top=0.25)) == pytest.approx(0.5)      # 2*2 / (4+4)
    assert float(C.iou(a, b, top=0.25)) == pytest.approx(2 / 6)     # 2 / 6
    assert float(C.dice(a, -a, top=0.25)) == 0 and float(C.iou(a, -a, top=0.25)) == 0


def test_points_4x4_by_hand():
    s = jnp.zeros((4, 4)).at[1, 3].set(4.0)   # mean 0.25, std sqrt(15)/4
    pts = np.array([[3, 1], [0, 0]])         # (x=3, y=1) is the peak
    z_peak, z_zero = 3.75 / (np.sqrt(15) / 4), -0.25 / (np.sqrt(15) / 4)
    assert float(C.nss(s, pts)) == pytest.approx((z_peak + z_zero) / 2, rel=1e-6)
    assert float(C.nss(s, pts[:1])) == pytest.approx(z_peak, rel=1e-6)
    # ROC points: (0,0), (0,1/2) at t=4, (1,1) at t=0 (all 14 unfixated pixels) -> 0.75
    assert float(C.auc_judd(s, pts)) == pytest.approx(0.75)
    assert float(C.auc_judd(s, pts[:1])) == pytest.approx(1.0)


# ---- extremes -----------------------------------------------------------------------

def test_self_and_opposite_extremes():
    a = jnp.asarray(_maps(0))
    assert float(C.dice(a, a)) == 1 and float(C.iou(a, a)) == 1
    np.testing.assert_allclose([C.pearson(a, a), C.spearman(a, a), C.sim(a, a)], 1, **TOL)
    assert abs(float(C.kld(a, a))) < 1e-6
    np.testing.assert_allclose([C.pearson(a, -a), C.spearman(a, -a)], -1, **TOL)
    # top 10% vs its complement's top 10% (= bottom 10%): disjoint
    assert float(C.dice(a, -a)) == 0 and float(C.iou(a, -a)) == 0
    # disjoint supports: SIM = 0 and KL is large
    p, q = jnp.zeros((4, 4)).at[0].set(1), jnp.zeros((4, 4)).at[3].set(1)
    assert float(C.sim(p, q)) == 0 and float(C.kld(p, q)) > 30


# ---- agreement with numpy / scipy ------------------------------------------------------

@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_against_numpy_scipy(seed, ties):
    a, b = _maps(seed, ties=ties), _maps(seed + 100, ties=ties)
    for top in (0.1, 0.25, 0.5):
        ma, mb = np_top(a, top), np_top(b, top)
        np.testing.assert_array_equal(np.asarray(C.top_mask(a, top)).ravel(), ma)
        inter = np.sum(ma & mb)
        np.testing.assert_allclose(C.dice(a, b, top=top), 2 * inter / (ma.sum() + mb.sum()), **TOL)
        np.testing.assert_allclose(C.iou(a, b, top=top), inter / np.sum(ma | mb), **TOL)
    np.testing.assert_allclose(C.spearman(a, b), stats.spearmanr(a.ravel(), b.ravel())[0], **TOL)
    np.testing.assert_allclose(C.pearson(a, b), stats.pearsonr(a.ravel(), b.ravel())[0], **TOL)
    np.testing.assert_allclose(C.kld(a, b), np_kld(a, b), **TOL)
    np.testing.assert_allclose(C.sim(a, b), np.minimum(np_density(a), np_density(b)).sum(), **TOL)
    pts = _pts(seed, 9)
    np.testing.assert_allclose(C.nss(a, pts), np_nss(a, pts), **TOL)
    np.testing.assert_allclose(C.auc_judd(a, pts), np_auc_judd(a, pts), **TOL)


def test_rank_matches_rankdata_with_ties():
    x = _maps(7, ties=True).ravel()
    np.testing.assert_allclose(correlation.ranks(jnp.asarray(x), descending=False)[1], stats.rankdata(x), **TOL)


def test_kld_sim_conventions():
    p, q = _maps(4), _maps(5)
    assert float(C.kld(p, q)) != pytest.approx(float(C.kld(q, p)))   # asymmetric
    np.testing.assert_allclose(C.kld(p, q), np_kld(p, q), **TOL)    # q is the human map
    np.testing.assert_allclose(C.kld(3 * p, q), C.kld(p, q), **TOL)  # scale-invariant
    neg = p - 0.5                                                    # shifted by -min
    np.testing.assert_allclose(C.sim(neg, q), np.minimum(np_density(neg), np_density(q)).sum(), **TOL)
    np.testing.assert_allclose(C.sim(np.zeros((H, W)), q), np.minimum(1 / (H * W), np_density(q)).sum(), **TOL)


def test_alignment():
    rho = jnp.array([0.3, 0.5, 0.4])
    assert float(C.alignment(rho, 0.65753)) == pytest.approx(0.4 / 0.65753, rel=1e-6)
    np.testing.assert_allclose(C.alignment(jnp.stack([rho, 2 * rho]), 0.5, axis=-1), [0.8, 1.6], **TOL)


# ---- batching, padding, jit -------------------------------------------------------------

PAIR = ["dice", "iou", "spearman", "pearson", "kld", "sim"]


@pytest.mark.parametrize("name", PAIR)
def test_batched_broadcast_and_jit(name):
    f = getattr(C, name)
    a, b = _maps(10, n=4, ties=True), _maps(11, n=4)
    per_map = np.array([f(a[i], b[i]) for i in range(4)])
    np.testing.assert_allclose(f(a, b), per_map, **TOL)
    np.testing.assert_allclose(jax.jit(f)(a, b), per_map, **TOL)
    np.testing.assert_allclose(jax.vmap(f)(a, b), per_map, **TOL)
    bcast = f(a.reshape(2, 2, H, W), b[0])  # one human map against a (2, 2) batch
    assert bcast.shape == (2, 2)
    np.testing.assert_allclose(bcast.ravel(), [f(a[i], b[0]) for i in range(4)], **TOL)


@pytest.mark.parametrize("name", ["nss", "auc_judd"])
def test_points_padding_batched_and_jit(name):
    f = getattr(C, name)
    maps = _maps(20, n=3, ties=True)
    counts = [2, 7, 5]
    pts = np.zeros((3, 7, 2), np.int64)
    valid = np.zeros((3, 7), bool)
    for i, k in enumerate(counts):
        pts[i, :k], valid[i, :k] = _pts(30 + i, k), True
    ref = np.array([f(maps[i], pts[i, :k]) for i, k in enumerate(counts)])
    np.testing.assert_allclose(ref, [(np_nss if name == "nss" else np_auc_judd)(maps[i], pts[i, :k])
                                     for i, k in enumerate(counts)], **TOL)
    np.testing.assert_allclose(f(maps, pts, valid), ref, **TOL)
    np.testing.assert_allclose(jax.jit(f)(maps, pts, valid), ref, **TOL)
    np.testing.assert_allclose(jax.vmap(f)(maps, pts, valid), ref, **TOL)
    # one point set broadcast against several maps
    np.testing.assert_allclose(f(maps, pts[1]), [f(m, pts[1]) for m in maps], **TOL)


def test_traced_top_under_jit():
    a, b = _maps(40), _maps(41)
    g = jax.jit(lambda t: C.dice(a, b, top=t))
    np.testing.assert_allclose(g(0.3), C.dice(a, b, top=0.3), **TOL)


# ---- pysaliency cross-check (pip install pysaliency) ----------------------------------

def _pysaliency(name):
    """Load a pysaliency submodule by file: ``import pysaliency`` itself can fail on
    pkg_resources (removed from recent setuptools) via its matlab model wrappers."""
    spec = importlib.util.find_spec("pysaliency")
    if spec is None or not spec.submodule_search_locations:
        missing_reference("pysaliency not installed")
    path = os.path.join(spec.submodule_search_locations[0], name + ".py")
    mod_spec = importlib.util.spec_from_file_location("_pysaliency_" + name, path)
    mod = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(mod)
    except ImportError as err:
        missing_reference(f"pysaliency.{name} not importable: {err}")
    return mod


@pytest.mark.parametrize("ties", [False, True])
def test_against_pysaliency(ties, monkeypatch):
    m = _pysaliency("metrics")
    a, b = _maps(50, ties=ties).astype(np.float64), _maps(51, ties=ties).astype(np.float64)
    pts = _pts(52, 11)
    np.testing.assert_allclose(C.pearson(a, b), m.CC(a, b), **TOL)
    np.testing.assert_allclose(C.kld(a, b), m.MIT_KLDiv(a, b), **TOL)
    np.testing.assert_allclose(C.sim(a, b), m.SIM(a, b), **TOL)
    np.testing.assert_allclose(C.nss(a, pts), np.mean(m.NSS(a, pts[:, 0], pts[:, 1])), **TOL)
    nu = _pysaliency("numba_utils")
    if not hasattr(np, "trapz"):  # pysaliency 0.2.22 calls np.trapz, gone in numpy 2.4
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    fixated = np.zeros(a.shape, bool)
    fixated[pts[:, 1], pts[:, 0]] = True
    ref, _, _ = nu.general_roc_numba(a[pts[:, 1], pts[:, 0]], a[~fixated], judd=1)
    np.testing.assert_allclose(C.auc_judd(a, pts), ref, **TOL)


def test_dice_iou_at_several_tops_equals_the_single_calls():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 4, (3, 12, 10)).astype(np.float32)  # many ties
    b = rng.random((3, 12, 10)).astype(np.float32)
    tops = (0.05, 0.1, 0.3)
    dices, ious = C.dice_iou(a, b, tops)
    for i, t in enumerate(tops):
        np.testing.assert_allclose(dices[i], C.dice(a, b, top=t), atol=1e-7)
        np.testing.assert_allclose(ious[i], C.iou(a, b, top=t), atol=1e-7)
