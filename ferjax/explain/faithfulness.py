"""Is a saliency map faithful to the network? Deletion, insertion and ROAD, in JAX.

A network is given as the attribution code takes it (:mod:`ferjax.networks.interface`):
``features(params, images)`` and a head (or a classifier of the pooled maps); images are (N, H, W,
C) float32 in [0, 1], maps (N, H, W). Every function is jit-compiled once per network (the
functions static, the parameters traced) and vmapped over images, curve points and percentiles;
batches are split over the devices (:mod:`ferjax.plumbing.devices`).

**The score** of an image is the target's softmax probability (``score="prob"``), logit
(``"logit"``) or log-probability (``"logprob"``); for (true, foil) targets (N, 2) it is the 2AFC
quantity: sigmoid(y_true - y_foil), y_true - y_foil, or log sigmoid(y_true - y_foil).

**Deletion and insertion** (Petsiuk, Das & Saenko, "RISE", BMVC 2018). Pixels are ordered by
saliency, descending, ties by flat index (a stable order; RISE's argsort leaves ties
arbitrary). With S = ``steps`` the step is ceil(HW / S) pixels, and after i steps the min(i step,
HW) first pixels are changed, i = 0..S. Deletion starts from the image and replaces pixels by
the ``baseline``: ``"blur"`` (a Gaussian blur of the image, sigma 5 px, 11 taps, zero padding,
separable: RISE's ``gkern(11, 5)``, up to its kernel's border taps, which RISE takes from
scipy's reflecting gaussian_filter), ``"zeros"`` or ``"mean"`` (each channel's mean over the
image). Insertion starts from the blurred image and puts the image's pixels back. The area is
the trapezoid over x_i = min(i step, HW) / HW, which equals RISE's (sum c - c_0/2 - c_S/2) / S
when the step divides HW. Lower deletion and higher insertion areas mean a more faithful map.

**ROAD**: :mod:`ferjax.explain.road` (MoRF and LeRF at each percentile; noisy linear imputation).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax import lax

from ferjax.analysis import mapops
from ferjax.explain import road
from ferjax.networks import interface
from ferjax.plumbing import devices


def target_score(logits, t_true, t_foil, contrast: bool, score: str):
    """(B, K) logits -> (B,) the score of each row's target (see the module docstring)."""
    if score not in ("prob", "logit", "logprob"):
        raise ValueError(f"score must be 'prob', 'logit' or 'logprob', got {score!r}")
    pick = lambda z, t: jnp.take_along_axis(z, t[:, None], axis=-1)[:, 0]   # noqa: E731
    if contrast:
        d = pick(logits, t_true) - pick(logits, t_foil)
        return {"prob": jax.nn.sigmoid(d), "logit": d, "logprob": jax.nn.log_sigmoid(d)}[score]
    z = {"prob": jax.nn.softmax, "logit": lambda v: v, "logprob": jax.nn.log_softmax}[score](logits)
    return pick(z, t_true)


def blur(images, sigma: float = 5.0, size: int = 11):
    """Separable Gaussian blur of (N, H, W, C), zero padding: taps exp(-i^2 / 2 sigma^2), |i| <= size // 2,
    summing to 1."""
    i = np.arange(size) - size // 2
    g = np.exp(-(i**2) / (2.0 * sigma**2))
    g = jnp.asarray(g / g.sum(), jnp.float32)
    n, h, w, c = images.shape
    x = jnp.moveaxis(images, -1, 1).reshape(n * c, 1, h, w)
    pad = size // 2
    x = lax.conv_general_dilated(x, g.reshape(1, 1, size, 1), (1, 1), [(pad, pad), (0, 0)], precision="highest")
    x = lax.conv_general_dilated(x, g.reshape(1, 1, 1, size), (1, 1), [(0, 0), (pad, pad)], precision="highest")
    return jnp.moveaxis(x.reshape(n, c, h, w), 1, -1)


def order_ranks(saliency):
    """(N, H, W) -> (N, H, W) int32: each pixel's place in the deletion order, 0 the most salient."""
    n = saliency.shape[0]
    order = jnp.argsort(-saliency.reshape(n, -1), axis=-1, stable=True)
    ranks = jax.vmap(lambda o: jnp.zeros_like(o).at[o].set(jnp.arange(o.shape[0], dtype=o.dtype)))(order)
    return ranks.reshape(saliency.shape)


def counts(hw: int, steps: int) -> np.ndarray:
    """(S + 1,) pixels changed after each step: min(i ceil(hw / steps), hw)."""
    step = -(-hw // steps)
    return np.minimum(np.arange(-(-hw // step) + 1) * step, hw)


@functools.partial(jax.jit, static_argnames=("features", "head", "contrast", "mode", "score", "baseline", "steps",
                                             "chunk"))
def _curves(features, head, params, images, saliency, t_true, t_foil, contrast, mode, score, baseline, steps,
            chunk):
    n, h, w, c = images.shape
    net = lambda x: head(params, features(params, x))   # noqa: E731
    ranks = order_ranks(saliency)
    blurred = blur(images)
    fills = {"blur": blurred, "zeros": jnp.zeros_like(images),
             "mean": jnp.broadcast_to(images.mean((1, 2), keepdims=True), images.shape)}
    start, finish = (images, fills[baseline]) if mode == "deletion" else (blurred, images)
    cnt = counts(h * w, steps)
    padded = np.concatenate([cnt, np.full(-len(cnt) % chunk, h * w)]).reshape(-1, chunk)

    def points(k):                                                   # (chunk,) counts -> (N, chunk) scores
        changed = ranks[:, None] < k[None, :, None, None]
        x = jnp.where(changed[..., None], finish[:, None], start[:, None]).reshape(n * chunk, h, w, c)
        rep = lambda t: jnp.repeat(t, chunk)   # noqa: E731
        return target_score(net(x), rep(t_true), rep(t_foil), contrast, score).reshape(n, chunk)

    curve = jnp.moveaxis(lax.map(points, jnp.asarray(padded)), 0, 1).reshape(n, -1)[:, :len(cnt)]
    x = jnp.asarray(cnt / (h * w), jnp.float32)
    return curve, jnp.sum((curve[:, 1:] + curve[:, :-1]) * 0.5 * jnp.diff(x), axis=1)


@functools.partial(jax.jit, static_argnames=("features", "head", "contrast", "order", "score", "iters"))
def _road(features, head, params, images, saliency, t_true, t_foil, percentiles, key, noise, contrast, order,
          score, iters, tol):
    net = lambda x: head(params, features(params, x))   # noqa: E731
    n, p = images.shape[0], percentiles.shape[0]
    filled = road.perturbed(images, saliency, percentiles, key, order=order, noise=noise, iters=iters, tol=tol)
    base = target_score(net(images), t_true, t_foil, contrast, score)
    rep = lambda t: jnp.repeat(t, p)   # noqa: E731
    after = target_score(net(filled.reshape((n * p,) + images.shape[1:])), rep(t_true), rep(t_foil), contrast, score)
    return after.reshape(n, p) - base[:, None]


def _split(targets, n):
    t = np.asarray(targets)
    if t.ndim == 2:
        return t[:, 0].astype(np.int32), t[:, 1].astype(np.int32), True
    return t.astype(np.int32), np.zeros(n, np.int32), False


def causal_curve(features, head, params, images, saliency, targets, *, mode: str = "deletion", steps: int = 16,
                 score: str = "prob", baseline: str = "blur", chunk: int = 4, mesh=None):
    """Deletion or insertion: ``(curve (N, S + 1), auc (N,), x (S + 1,))``, x the fraction changed."""
    if mode not in ("deletion", "insertion") or baseline not in ("blur", "zeros", "mean"):
        raise ValueError(f"mode must be deletion or insertion, baseline blur, zeros or mean: {mode!r}, {baseline!r}")
    t_true, t_foil, contrast = _split(targets, len(images))
    n, params, x, s, tt, tf = devices.split_batch(mesh, params, images, saliency, t_true, t_foil)
    curve, auc = _curves(features, interface.as_head(head), params, x, s, tt, tf, contrast, mode, score, baseline,
                         steps, chunk)
    hw = int(np.prod(np.shape(images)[1:3]))
    return np.asarray(curve)[:n], np.asarray(auc)[:n], counts(hw, steps) / hw


def road_scores(features, head, params, images, saliency, targets, *, percentiles=(10, 20, 30, 40, 50, 60, 70, 80, 90),
                order: str = "morf", noise: float = 0.0, seed: int = 0, score: str = "logit", iters: int | None = None,
                tol: float = 1e-6, mesh=None):
    """ROAD: (N, P) score(imputed) - score(image) at each percentile (:mod:`ferjax.explain.road`).

    The noise draws come from ``jax.random.PRNGKey(seed)``, split per device batch position, so
    they agree with pytorch-grad-cam's only in distribution."""
    t_true, t_foil, contrast = _split(targets, len(images))
    n, params, x, s, tt, tf = devices.split_batch(mesh, params, images, saliency, t_true, t_foil)
    pct = jnp.asarray(percentiles, jnp.float32)
    out = _road(features, interface.as_head(head), params, x, s, tt, tf, pct, jax.random.PRNGKey(seed),
                jnp.float32(noise), contrast, order, score, iters, jnp.float32(tol))
    return np.asarray(out)[:n]


def evaluate(network, images, maps: dict, targets, *, steps: int = 16, baseline: str = "blur", score: str = "prob",
             road_score: str = "logit", percentiles=(10, 30, 50, 70, 90), noise: float = 0.01, seed: int = 0,
             batch: int = 32, mesh=None, progress=None) -> tuple[pd.DataFrame, dict]:
    """Every map set's faithfulness per image: ``(scores, curves)``.

    ``network``: ``(params, features, head, spec)``; ``maps``: name -> (N, H, W) at the images'
    size, each min-max normalised to [0, 1] here (ROAD's LeRF ranks 1 - s). ``scores`` is long
    (method, item, metric, value) with ``deletion_auc``, ``insertion_auc``, ``road_morf`` and
    ``road_lerf`` (means over the percentiles) and ``road_combined`` = (LeRF - MoRF) / 2;
    ``curves``: name -> {"x", "deletion", "insertion"}, the mean curves. ``progress(k)`` advances
    by the images done, per map set. A map set equal to an earlier one after normalising (CAM and
    GradCAM on a GAP-linear head) takes its scores without being run again.
    """
    params, features, head, _ = network
    n = len(images)
    pad = lambda a: np.concatenate([a, np.repeat(a[-1:], -n % batch, 0)])   # noqa: E731  one batch shape, one compile
    images, targets = pad(np.asarray(images, np.float32)), pad(np.asarray(targets))
    rows, rows_of, curves, done = [], {}, {}, []
    for name, m in maps.items():
        m = pad(mapops.minmax(np.asarray(m, np.float32)))
        twin = next((d for d, dm in done if dm.shape == m.shape and np.allclose(dm, m, atol=1e-6)), None)
        if twin is not None:   # the same map up to scale (CAM and GradCAM on a GAP-linear head): same scores
            rows.append(rows_of[twin].assign(method=name))
            curves[name] = curves[twin]
            if progress is not None:
                progress(n)
            continue
        done.append((name, m))
        parts = {k: [] for k in ("deletion", "insertion", "morf", "lerf")}
        for b in range(0, len(images), batch):
            sl = slice(b, b + batch)
            args = (features, head, params, images[sl], m[sl], targets[sl])
            for mode in ("deletion", "insertion"):
                curve, auc, x = causal_curve(*args, mode=mode, steps=steps, score=score, baseline=baseline, mesh=mesh)
                parts[mode].append((curve, auc))
            for order in ("morf", "lerf"):
                parts[order].append(road_scores(*args, percentiles=percentiles, order=order, noise=noise,
                                                seed=seed + b, score=road_score, mesh=mesh).mean(1))
            if progress is not None:
                progress(min(batch, n - b))
        values = {f"{mode}_auc": np.concatenate([a for _, a in parts[mode]])[:n] for mode in ("deletion", "insertion")}
        values.update(road_morf=np.concatenate(parts["morf"])[:n], road_lerf=np.concatenate(parts["lerf"])[:n])
        values["road_combined"] = (values["road_lerf"] - values["road_morf"]) / 2
        curves[name] = {"x": x.tolist(), **{mode: np.concatenate([c for c, _ in parts[mode]])[:n].mean(0).tolist()
                                            for mode in ("deletion", "insertion")}}
        rows_of[name] = pd.concat([pd.DataFrame({"method": name, "item": np.arange(len(v)), "metric": k,
                                                 "value": v.astype(np.float64)}) for k, v in values.items()])
        rows.append(rows_of[name])
    return pd.concat(rows, ignore_index=True), curves
