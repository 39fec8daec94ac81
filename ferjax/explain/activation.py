"""Class activation maps: CAM and GradCAM, in JAX.

A model is two pure functions (:mod:`ferjax.networks.interface`)::

    features(params, images)   -> A, shape (N, h, w, K)   images: (N, H, W, C) NHWC float32
    head(params, A)            -> y, shape (N, C)

given either as a :class:`ferjax.networks.interface.Head` of the maps, or as a
classifier of the pooled maps, ``classifier(params, mean_{h,w} A)`` (the
networks of :mod:`ferjax.networks.cnn`). Before use, both functions go through
:func:`ferjax.networks.rewrite.fast_gradients`, so that any network's convolutions,
whoever wrote them, take ferjax's fast gradient rules.

**CAM** (Zhou, Khosla, Lapedriza, Oliva & Torralba, "Learning Deep Features
for Discriminative Localization", CVPR 2016). With an affine classifier
``y = pooled @ W + b`` (``W``: (K, C)), the map for class c is

    CAM_c(u, v) = sum_k W[k, c] A_k(u, v)            (bias b left out)

``W`` is read off the head by linearisation, ``W[:, c] = d y_c / d pooled`` at
``pooled = 0`` (for a head of the maps, on maps constant over space). A head
that is not global average pooling followed by an affine map raises
:class:`ValueError` naming the check it fails.

**GradCAM** (Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra,
"Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017)::

    alpha_k     = (1 / hw) sum_{u,v} d y_c / d A_k(u, v)
    GradCAM_c   = ReLU(sum_k alpha_k A_k)

The gradient is taken with ``jax.vjp`` of ``head(params, A)`` with respect to
``A`` (nothing flows back through the convolutions), so any head works. On a
GAP-linear network ``alpha_k = W[k, c] / hw``, so GradCAM is CAM / hw.

**Targets.** ``targets`` is either an int array (N,) of classes, or (N, 2)
pairs ``(true, foil)`` meaning the contrast score ``y_true - y_foil`` (so the
raw map is ``map(true) - map(foil)`` for both methods).

**Post-processing** (defaults reproduce pytorch-grad-cam's ``GradCAM`` output,
each switchable off):

1. ``relu``: ``max(map, 0)``;
2. ``upsample``: bilinear resize from (h, w) to the image size (H, W) with
   half-pixel centres (``jax.image.resize(..., "bilinear")``, like
   ``cv2.resize``'s ``INTER_LINEAR``);
3. ``normalize``: per map ``(x - min) / (max - min + 1e-7)`` (the epsilon
   convention of pytorch-grad-cam's ``scale_cam_image``:
   ``x -= x.min(); x /= 1e-7 + x.max()``).

pytorch-grad-cam normalises, resizes, then normalises again; since the
resize is linear and keeps constants, that equals resize-then-normalise
(done here) up to the 1e-7 epsilon.

Batches are split over the visible devices (:mod:`ferjax.plumbing.devices`).

Extremal Perturbation lives in :mod:`ferjax.explain.perturbation`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.explain import heads
from ferjax.explain.heads import classifier_weights
from ferjax.networks import interface, rewrite
from ferjax.plumbing import devices

__all__ = ["cam", "gradcam", "classifier_weights"]

EPS = 1e-7  # pytorch-grad-cam's scale_cam_image epsilon


def _split_targets(targets, n: int):
    """Targets -> (true (N,) int32, foil (N,) int32, contrast flag)."""
    t = np.asarray(targets)
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"targets must be integers, got dtype {t.dtype}")
    if t.ndim == 1 and t.shape[0] == n:
        return jnp.asarray(t, jnp.int32), jnp.zeros(n, jnp.int32), False
    if t.ndim == 2 and t.shape == (n, 2):
        return jnp.asarray(t[:, 0], jnp.int32), jnp.asarray(t[:, 1], jnp.int32), True
    raise ValueError(
        f"targets must have shape ({n},) (classes) or ({n}, 2) (true, foil pairs); "
        f"got {t.shape}")


def _postprocess(maps, image_hw, relu: bool, normalize: bool, upsample: bool):
    """(N, h, w) raw maps -> ReLU, bilinear upsampling to image_hw, min-max."""
    if relu:
        maps = jnp.maximum(maps, 0.0)
    if upsample:
        maps = jax.image.resize(maps, (maps.shape[0], *image_hw), "bilinear")
    if normalize:
        lo = maps.min(axis=(1, 2), keepdims=True)
        hi = maps.max(axis=(1, 2), keepdims=True)
        maps = (maps - lo) / (hi - lo + EPS)
    return maps


def _prepare(features, head, fast):
    """The model's functions as used inside a traced attribution program (fast convolution gradients)."""
    if not fast:
        return features, head
    return rewrite.fast_gradients(features), rewrite.fast_gradients(head)


def _grid(a, tokens, image_hw):
    """Maps (N, h, w, K) as they are; tokens (N, T, K) as a grid, through ``tokens`` (a
    :class:`ferjax.networks.interface.Tokens`, or the user's own reshape of (N, T, K) to (N, h, w, K))."""
    if a.ndim == 4:
        return a
    if tokens is None or isinstance(tokens, interface.Tokens):
        return (tokens or interface.Tokens()).split(a, image_hw)[0]
    return tokens(a)


@functools.partial(jax.jit, static_argnames=("features", "head", "contrast", "relu", "normalize",
                                             "upsample", "tokens"))
def _cam_checked(features, head, params, images, t_true, t_foil, contrast, relu, normalize, upsample, tokens):
    # the head's weights and its checks compile into the same program as the maps:
    # one dispatch per call (an eager check costs more than the maps on a GPU)
    out = jax.eval_shape(features, params, images)
    if isinstance(out, interface.Cut):
        if out.carry:
            raise ValueError(
                "CAM needs a head that is a function of the explained maps alone; this network's head also reads "
                f"{len(out.carry)} value(s) from before the layer (carried across the cut, as a transformer's "
                "residual stream is). Use gradcam().")
        features = lambda p, x, f=features: f(p, x).maps   # noqa: E731
        head = interface.Head(lambda p, a, h=head: h(p, interface.Cut(a)))
    shape = interface.maps_of(out).shape[1:]                       # (h, w, K), or (T, K) for tokens
    w, errors, scales = heads.affine_residuals(interface.pooled_view(head, shape[:-1]), params, shape[-1])
    gap = interface.gap_residual(head, params, shape)
    # no gradient: the maps need no rewriting
    a = _grid(features(params, images), tokens, images.shape[1:3])    # (N, h, w, K)
    wc = w.T[t_true]                                               # (N, K)
    if contrast:
        wc = wc - w.T[t_foil]
    raw = jnp.einsum("nhwk,nk->nhw", a, wc, precision="highest")
    return _postprocess(raw, images.shape[1:3], relu, normalize, upsample), errors, scales, gap


@functools.partial(jax.jit, static_argnames=("features", "head", "contrast", "relu", "normalize", "upsample",
                                             "fast", "tokens"))
def _gradcam_maps(features, head, params, images, t_true, t_foil, contrast, relu, normalize, upsample, fast,
                  tokens):
    features, head = _prepare(features, head, fast)
    out = features(params, images)                                 # maps, or a Cut (maps, carried values)
    y, pullback = jax.vjp(lambda m: head(params, interface.with_maps(out, m)), interface.maps_of(out))
    cot = jax.nn.one_hot(t_true, y.shape[-1], dtype=y.dtype)
    if contrast:
        cot = cot - jax.nn.one_hot(t_foil, y.shape[-1], dtype=y.dtype)
    (grads,) = pullback(cot)                                       # d y_c / d A, the carry held fixed
    # tokens: activations and gradients take the same reshape to (N, h, w, K), as pytorch-grad-cam's
    # reshape_transform does; the prefix tokens' gradients are left out with them
    a, grads = (_grid(v, tokens, images.shape[1:3]) for v in (interface.maps_of(out), grads))
    alpha = grads.mean(axis=(1, 2))                                # (N, K)
    raw = jnp.einsum("nhwk,nk->nhw", a, alpha, precision="highest")
    return _postprocess(raw, images.shape[1:3], relu, normalize, upsample)


def cam(features, head, params, images, targets, *, relu=True, normalize=True, upsample=True, mesh=None,
        tokens=None):
    """CAM (Zhou et al., CVPR 2016): ``sum_k W[k, c] A_k``, bias left out.

    Args:
      features, head: the model's pure functions (see module docstring);
        ``head`` a :class:`ferjax.networks.interface.Head` or a classifier of the pooled
        maps, and it must be global average pooling followed by an affine map.
      params: the parameters both take.
      images: (N, H, W, C) float32, NHWC.
      targets: (N,) int classes or (N, 2) int (true, foil) pairs.
      relu, normalize, upsample: post-processing steps (module docstring).
      mesh: a 1-D ``jax.sharding.Mesh`` to split the images over (default:
        all visible devices; see :mod:`ferjax.plumbing.devices`).
      tokens: for features of shape (N, T, K): a
        :class:`ferjax.networks.interface.Tokens` (grid and prefix tokens;
        default: derived from T and the image size), or a function of the
        (N, T, K) array giving (N, h, w, K) (pytorch-grad-cam's
        ``reshape_transform``, in NHWC).

    Returns:
      (N, H, W) maps (or (N, h, w) with ``upsample=False``).

    Raises:
      ValueError: the head is not global average pooling and an affine map
        (the message names the check it fails), or targets are malformed.
    """
    images = jnp.asarray(images, jnp.float32)
    t_true, t_foil, contrast = _split_targets(targets, images.shape[0])
    n, params, images, t_true, t_foil = devices.split_batch(mesh, params, images, t_true, t_foil)
    maps, errors, scales, gap = _cam_checked(features, interface.as_head(head), params, images, t_true, t_foil,
                                             contrast, relu, normalize, upsample, tokens)
    heads.raise_unless_affine(errors, scales, gap)
    return maps[:n]


def gradcam(features, head, params, images, targets, *, relu=True, normalize=True, upsample=True, mesh=None,
            fast_gradients=True, tokens=None):
    """GradCAM (Selvaraju et al., ICCV 2017): ``ReLU(sum_k alpha_k A_k)``.

    ``alpha_k`` is the spatial mean of ``d y_c / d A_k``; for a (true, foil)
    pair, ``y_c = y_true - y_foil``. Any head works, one that also reads
    values carried across the cut too (:class:`ferjax.networks.interface.Cut`;
    they are held fixed). Arguments (``mesh`` and ``tokens`` included) and
    return as :func:`cam`; ``relu=False`` gives the signed map;
    ``fast_gradients=False`` keeps the network's convolutions as they are
    (:func:`ferjax.networks.rewrite.fast_gradients`; the maps are the same).
    """
    images = jnp.asarray(images, jnp.float32)
    t_true, t_foil, contrast = _split_targets(targets, images.shape[0])
    n, params, images, t_true, t_foil = devices.split_batch(mesh, params, images, t_true, t_foil)
    return _gradcam_maps(features, interface.as_head(head), params, images, t_true, t_foil, contrast,
                         relu, normalize, upsample, bool(fast_gradients), tokens)[:n]
