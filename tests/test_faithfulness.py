"""Deletion, insertion and ROAD (ferjax.explain.faithfulness, ferjax.explain.road).

Checked against direct, loop-by-loop implementations written here (one pixel, one step, one
image at a time; the imputation's linear system built neighbour by neighbour and solved by
scipy), against pytorch-grad-cam's ROADMostRelevantFirst / ROADLeastRelevantFirst on the same
torch weights and maps, and on a GAP-linear toy whose evidence is known.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from conftest import missing_reference

from ferjax.explain import faithfulness as F
from ferjax.explain import road

SIZE, CLASSES = 12, 3


def _net(seed=0, channels=1):
    """A small CNN, conv 3x3 (-> 4) - ReLU - GAP - linear (-> 3), as (params, features, classifier)."""
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(0, 0.6, (3, 3, channels, 4)).astype(np.float32),
              "b": rng.normal(0, 0.1, 4).astype(np.float32),
              "fc": rng.normal(0, 1.0, (4, CLASSES)).astype(np.float32), "fb": np.zeros(CLASSES, np.float32)}

    def features(p, x):
        y = jax.lax.conv_general_dilated(x, p["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         precision="highest")
        return jax.nn.relu(y + p["b"])

    def classifier(p, pooled):
        return jnp.dot(pooled, p["fc"], precision="highest") + p["fb"]

    return params, features, classifier


def _data(n=3, seed=1, channels=1):
    rng = np.random.default_rng(seed)
    images = rng.random((n, SIZE, SIZE, channels)).astype(np.float32)
    maps = rng.random((n, SIZE, SIZE)).astype(np.float32)
    maps[0, :4] = 0.0                                                  # ties, as ReLU'd maps have
    return images, maps, np.arange(n) % CLASSES


def _logits(params, features, classifier, x):
    return np.asarray(classifier(params, features(params, jnp.asarray(x[None])).mean((1, 2))))[0].astype(np.float64)


def _score(z, t, kind):
    e = np.exp(z - z.max())
    p = e / e.sum()
    return {"logit": z[t], "prob": p[t], "logprob": np.log(p[t])}[kind]


# ------------------------------------------------------------------ loop-by-loop references

def loop_blur(image, sigma=5.0, size=11):
    h, w, c = image.shape
    r = size // 2
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    out = np.zeros((h, w, c))
    for y in range(h):
        for x in range(w):
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        out[y, x] += g[dy + r] * g[dx + r] * image[y + dy, x + dx]
    return out


def loop_curve(net, image, saliency, target, steps, mode, score, baseline):
    """One image: change the next step's pixels, one by one, then score; trapezoid area."""
    h, w, c = image.shape
    order = sorted(range(h * w), key=lambda i: (-saliency.ravel()[i], i))
    blurred = loop_blur(image)
    fill = {"blur": blurred, "zeros": np.zeros_like(blurred), "mean": np.broadcast_to(image.mean((0, 1)), image.shape)}
    current, finish = (image.astype(np.float64).copy(), fill[baseline]) if mode == "deletion" else \
        (blurred.copy(), image.astype(np.float64))
    step = -(-h * w // steps)
    curve, xs, done = [], [], 0
    while True:
        curve.append(_score(net(current.astype(np.float32)), target, score))
        xs.append(done / (h * w))
        if done == h * w:
            break
        for i in order[done:done + step]:
            current[i // w, i % w] = finish[i // w, i % w]
        done = min(done + step, h * w)
    return np.array(curve), sum((curve[i] + curve[i + 1]) / 2 * (xs[i + 1] - xs[i]) for i in range(len(xs) - 1))


def loop_impute(image, keep):
    """Each removed pixel the weighted mean of its in-frame neighbours: the system built pixel by pixel."""
    h, w, c = image.shape
    removed = [(y, x) for y in range(h) for x in range(w) if not keep[y, x]]
    index = {p: i for i, p in enumerate(removed)}
    a, rhs = sp.lil_matrix((len(removed), len(removed))), np.zeros((len(removed), c))
    for i, (y, x) in enumerate(removed):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if (dy or dx) and 0 <= y + dy < h and 0 <= x + dx < w:
                    weight = 1 / 12 if dy and dx else 1 / 6
                    a[i, i] += weight
                    if keep[y + dy, x + dx]:
                        rhs[i] += weight * image[y + dy, x + dx]
                    else:
                        a[i, index[(y + dy, x + dx)]] -= weight
    out = image.astype(np.float64).copy()
    if removed:
        solution = np.asarray(spla.spsolve(a.tocsc(), rhs)).reshape(len(removed), c)
        for (y, x), v in zip(removed, solution):
            out[y, x] = v
    return out


def loop_road(net, images, maps, targets, percentiles, order, score):
    out = np.zeros((len(images), len(percentiles)))
    for i, (image, m, t) in enumerate(zip(images, maps, targets)):
        s = np.float32(1) - m if order == "lerf" else m
        for j, p in enumerate(percentiles):
            keep = s < np.percentile(s, p)
            out[i, j] = _score(net(loop_impute(image, keep).astype(np.float32)), t, score) - _score(net(image), t, score)
    return out


# ------------------------------------------------------------------------------ the tests

@pytest.mark.parametrize("mode, baseline, score", [("deletion", "blur", "prob"), ("deletion", "zeros", "logit"),
                                                   ("deletion", "mean", "logprob"), ("insertion", "blur", "prob")])
def test_deletion_and_insertion_match_a_loop_by_loop_implementation(mode, baseline, score):
    params, features, classifier = _net()
    images, maps, targets = _data()
    net = lambda x: _logits(params, features, classifier, x)   # noqa: E731
    curve, auc, x = F.causal_curve(features, classifier, params, images, maps, targets, mode=mode, steps=7,
                                   score=score, baseline=baseline)
    assert curve.shape == (3, len(x)) and x[0] == 0 and x[-1] == 1
    for i in range(3):
        want_curve, want_auc = loop_curve(net, images[i], maps[i], targets[i], 7, mode, score, baseline)
        np.testing.assert_allclose(curve[i], want_curve, atol=2e-5)
        np.testing.assert_allclose(auc[i], want_auc, atol=2e-5)


def test_blur_matches_the_loop():
    images, _, _ = _data(n=1, channels=2)
    np.testing.assert_allclose(np.asarray(F.blur(jnp.asarray(images)))[0], loop_blur(images[0]), atol=1e-6)


def test_removed_pixels_are_numpys_percentile_sets():
    _, maps, _ = _data(n=3)
    pct = [10, 20, 30, 50, 70, 90]
    for order in ("morf", "lerf"):
        for m in maps:
            got = np.asarray(road.keep_mask(jnp.asarray(m), pct, order))
            s = np.float32(1) - m if order == "lerf" else m
            np.testing.assert_array_equal(got, np.stack([s < np.percentile(s, p) for p in pct]))


def test_imputation_matches_the_direct_solve_and_simple_cases():
    images, maps, _ = _data(n=2, channels=2)
    for frac in (0.1, 0.5, 0.9):
        keep = maps[1] < np.quantile(maps[1], 1 - frac)
        got = np.asarray(road.impute(jnp.asarray(images[0]), jnp.asarray(keep)))
        np.testing.assert_allclose(got, loop_impute(images[0], keep), atol=1e-5)
    ramp = np.broadcast_to((np.arange(SIZE, dtype=np.float32) / SIZE)[None, :, None], (SIZE, SIZE, 1))
    keep = np.ones((SIZE, SIZE), bool)
    keep[3:8, 4:9] = False                          # an interior hole: a linear ramp is filled exactly
    np.testing.assert_allclose(np.asarray(road.impute(jnp.asarray(ramp), jnp.asarray(keep))), ramp, atol=1e-5)
    every = np.asarray(road.impute(jnp.asarray(images[0]), jnp.zeros((SIZE, SIZE), bool)))
    assert np.all(every == 0)                       # nothing kept: 0, as scipy's singular spsolve gives


@pytest.mark.parametrize("order", ["morf", "lerf"])
@pytest.mark.parametrize("score", ["logit", "prob"])
def test_road_matches_a_loop_by_loop_implementation(order, score):
    params, features, classifier = _net()
    images, maps, targets = _data()
    pct = (10, 40, 70, 90)
    got = F.road_scores(features, classifier, params, images, maps, targets, percentiles=pct, order=order,
                        score=score)
    want = loop_road(lambda x: _logits(params, features, classifier, x), images, maps, targets, pct, order, score)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_road_noise_only_touches_removed_pixels():
    images, maps, _ = _data(n=2)
    a = road.perturbed(jnp.asarray(images), jnp.asarray(maps), jnp.asarray([50.0]), jax.random.PRNGKey(0), noise=0.0)
    b = road.perturbed(jnp.asarray(images), jnp.asarray(maps), jnp.asarray([50.0]), jax.random.PRNGKey(0), noise=0.1)
    keep = np.asarray(jax.vmap(lambda s: road.keep_mask(s, [50.0]))(jnp.asarray(maps)))[..., None]
    diff = np.asarray(b - a)
    assert np.all(diff[keep] == 0) and 0.05 < diff[~keep].std() < 0.15


def _torch_references():
    """torch and pytorch-grad-cam's ROAD, with stand-ins for the modules it imports but ROAD never uses."""
    try:
        import torch
    except ImportError:
        missing_reference("torch is not installed")
    from test_attribution import _import_references

    _, pgc = _import_references()
    import pytorch_grad_cam.metrics.road as pgc_road
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

    return torch, pgc_road, ClassifierOutputTarget, ClassifierOutputSoftmaxTarget


def test_road_agrees_with_pytorch_grad_cam():
    """The same weights in torch and JAX, pytorch-grad-cam's imputer noise set to 0, logit and softmax targets.

    Tolerance |d| <= 1e-5 + 1e-4 |score| (at most 6e-5 here): the CG solve stops at a relative residual of
    1e-6 in float32, and two frameworks' float32 convolutions differ by ~1e-7 relative; measured, the
    difference is at most 1.2e-6. pytorch-grad-cam's own 0.01 noise moves these scores by 1e-3 to 1e-2,
    20 to 170 times the tolerance, so a wrong imputation (or a wrong removed set) would fail."""
    torch, pgc_road, target_logit, target_prob = _torch_references()
    torch.set_num_threads(1)
    params, features, classifier = _net(seed=3, channels=3)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    fc = torch.nn.Linear(4, CLASSES)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(params["w"].transpose(3, 2, 0, 1).copy()))
        conv.bias.copy_(torch.from_numpy(params["b"]))
        fc.weight.copy_(torch.from_numpy(params["fc"].T.copy()))
        fc.bias.copy_(torch.from_numpy(params["fb"]))
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), fc).eval()
    images, maps, targets = _data(n=4, seed=5, channels=3)
    tensor = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    pct = (10, 30, 50, 70, 90)
    for order, metric in (("morf", pgc_road.ROADMostRelevantFirst), ("lerf", pgc_road.ROADLeastRelevantFirst)):
        for score, target in (("logit", target_logit), ("prob", target_prob)):
            want = []
            for p in pct:
                m = metric(p)
                m.perturbation.imputer.noise = 0.0
                want.append(m(tensor, maps, [target(int(t)) for t in targets], model))
            want = np.stack(want, 1)
            got = F.road_scores(features, classifier, params, images, maps, targets, percentiles=pct, order=order,
                                score=score)
            assert np.all(np.abs(got - want) <= 1e-5 + 1e-4 * np.abs(want)), (order, score, np.abs(got - want).max())


def test_the_true_evidence_map_beats_a_shuffled_one_on_a_gap_linear_toy():
    """logit_c = mean_uv E_c(u, v) x(u, v): GAP over the maps A_c = E_c x, then the identity. Each pixel's
    evidence for class c is E_c x; a map that ranks the pixels by it must be more faithful than the same
    values shuffled over the image, by every measure."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    blobs = [np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8.0) for cx, cy in ((3, 3), (8, 6), (5, 9))]
    params = {"E": np.stack(blobs, -1).astype(np.float32) * 40}

    def features(p, images):
        return images[..., :1] * p["E"][None]

    def classifier(p, pooled):
        return pooled

    images = rng.random((24, SIZE, SIZE, 1)).astype(np.float32)
    targets = np.arange(24) % 3
    evidence = params["E"][..., targets].transpose(2, 0, 1) * images[..., 0]
    shuffled = np.stack([rng.permutation(m.ravel()).reshape(m.shape) for m in evidence])
    scores, curves = F.evaluate((params, features, classifier, {}), images, {"true": evidence, "shuffled": shuffled},
                                targets, steps=12, baseline="zeros", batch=16)
    means = scores.groupby(["metric", "method"])["value"].mean()
    assert means["deletion_auc", "true"] < means["deletion_auc", "shuffled"]
    assert means["insertion_auc", "true"] > means["insertion_auc", "shuffled"]
    assert means["road_morf", "true"] < means["road_morf", "shuffled"]
    assert means["road_combined", "true"] > means["road_combined", "shuffled"]
    assert len(curves["true"]["deletion"]) == len(curves["true"]["x"]) == 13
