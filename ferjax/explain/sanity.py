"""Sanity checks of attribution maps: the pointing game and model randomisation.

**Pointing game** (Zhang, Bargal, Lin, Brandt, Shen & Sclaroff, "Top-down
Neural Attention by Excitation Backprop", ECCV 2016 / IJCV 2018). A map
"points" at its peak, the pixel of largest value; it scores a hit when the
peak falls inside the ground-truth region of the explained class::

    peak(M) = argmax_p M(p),   hit = [dist(peak(M), R) <= tolerance]

Here R is the union of the regions of the expression's action units (AUs),
and the hit rate is the fraction of hits. Zhang et al. allow a tolerance of
15 px at ~224 px; the default here is 0 (the peak itself must be in R).
Ties and flat maps, which ``argmax`` would settle arbitrarily (first index),
are settled explicitly: a map whose maximum equals its minimum (constant),
or that is not finite, is a miss; with several maximal pixels, ``ties="all"``
(default, conservative) needs every one of them to be a hit, ``ties="any"``
at least one.

**Model randomisation** (Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim,
"Sanity Checks for Saliency Maps", NeurIPS 2018). An explanation that
depends on what the network learned must change when the learned weights are
replaced by random ones. The parameters are re-initialised from the top
(the classifier head) down, cascading: each level keeps the previous level's
random layers and randomises more, up to the whole network. The similarity
of a map to the trained network's map is the Spearman rank correlation over
pixels (:func:`ferjax.analysis.similarity.spearman`, average ranks for ties); Adebayo et
al. call a method sensitive when it drops well below 1. A single random draw
is a noisy estimate (a random head gives each class one random weight
vector, shared by all its images), so :func:`randomization_test` averages
several draws.
"""

from __future__ import annotations

import jax
import numpy as np
from scipy import ndimage

from ferjax.analysis import similarity
from ferjax.faces import expressions, render
from ferjax.faces.labels import NAMES

TIES = ("all", "any")


def expression_regions(regions, intensities, labels, *, size=None):
    """Union of the regions of each image's expression AUs: bool (N, H, W).

    regions: bool (N, len(render.AUS), H, W), every AU's region on that face
    (``ferjax stimuli``'s regions.npz); intensities: (N, len(render.AUS));
    labels: (N,) classes. An AU counts when it is in the class's EMFACS
    prototype (``render.PROTOTYPES``) and active (intensity > 0); AUs leaked in
    from other classes do not. Neutral faces have no AU, so an empty region.
    With ``size`` (a side, or (H, W)) the masks are resampled (nearest pixel centre) to it.
    """
    regions, intensities, labels = np.asarray(regions, bool), np.asarray(intensities), np.asarray(labels)
    if regions.ndim != 4 or regions.shape[:2] != intensities.shape or labels.shape != regions.shape[:1] \
            or regions.shape[1] != len(expressions.AUS):
        raise ValueError(f"regions (N, {len(render.AUS)}, H, W), intensities (N, {len(render.AUS)}) and labels "
                         f"(N,) must agree; got {regions.shape}, {intensities.shape}, {labels.shape}")
    proto = np.zeros((len(NAMES), len(expressions.AUS)), bool)
    for c, name in enumerate(NAMES):
        proto[c, [expressions.AU_INDEX[au] for au in expressions.PROTOTYPES[name]]] = True
    use = proto[labels] & (intensities > 0)                               # (N, AUs)
    out = (regions & use[:, :, None, None]).any(1)
    hw = None if size is None else (size, size) if np.ndim(size) == 0 else tuple(size)
    if hw is not None and tuple(out.shape[1:]) != hw:
        rows = ((np.arange(hw[0]) + 0.5) * out.shape[1] / hw[0]).astype(int)
        cols = ((np.arange(hw[1]) + 0.5) * out.shape[2] / hw[1]).astype(int)
        out = out[:, rows][:, :, cols]
    return out


def pointing_game(maps, regions, *, tolerance: float = 0.0, ties: str = "all"):
    """Pointing-game hits, bool (N,): does each map's peak fall in its region?

    maps: (N, H, W) float; regions: (N, H, W) bool, on the same pixel grid,
    none empty (leave out images without ground truth, e.g. neutral faces).
    A pixel p is a hit when its Euclidean distance to the nearest region pixel
    is <= ``tolerance`` (pixels). A constant or non-finite map is a miss;
    several maximal pixels are settled by ``ties`` (module docstring).
    """
    maps, regions = np.asarray(maps, np.float64), np.asarray(regions)
    if maps.ndim != 3 or regions.shape != maps.shape:
        raise ValueError(f"maps (N, H, W) and regions (N, H, W) must have the same shape; "
                         f"got {maps.shape} and {regions.shape}")
    if regions.dtype != bool:
        raise ValueError(f"regions must be boolean masks, got dtype {regions.dtype}")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    empty = np.flatnonzero(~regions.any((1, 2)))
    if len(empty):
        raise ValueError(f"{len(empty)} image(s) have an empty region (first: index {empty[0]}); "
                         "leave them out of the pointing game")
    if tolerance > 0:
        # distance of every pixel to the nearest region pixel, per image
        regions = np.stack([ndimage.distance_transform_edt(~r) <= tolerance for r in regions])
    hi, lo = maps.max((1, 2)), maps.min((1, 2))
    peak = maps == hi[:, None, None]                                      # (N, H, W) maximal pixels
    inside = (peak & regions).sum((1, 2))
    hit = inside == peak.sum((1, 2)) if ties == "all" else inside > 0
    return hit & np.isfinite(maps).all((1, 2)) & (hi > lo)


def randomize(params, init, key, *, only=None):
    """Parameters with some (or all) leaves re-initialised, same structure.

    ``init(key)`` must return a fresh parameter tree of the same structure and
    shapes (the model's own initialisers, e.g. ``ferjax.networks.cnn.create(...)[0]``);
    its leaves replace those of ``params`` whose path starts with one of the
    prefixes in ``only`` (paths are ``/``-joined keys, e.g. ``"head"`` or
    ``"convs/4"``). ``only=None`` re-initialises everything; ``only=()``
    returns ``params`` unchanged.
    """
    fresh = init(key)
    same = jax.tree.structure(fresh) == jax.tree.structure(params) and all(
        np.shape(a) == np.shape(b) for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(params)))
    if not same:
        raise ValueError("init(key) does not give parameters of the same structure and shapes as params")
    if only is None:
        return fresh
    if isinstance(only, str):
        only = (only,)
    prefixes = [tuple(p.split("/")) for p in only]

    def match(path):
        return any(path[:len(p)] == p for p in prefixes)

    paths = [_path(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    unknown = ["/".join(p) for p in prefixes if not any(q[:len(p)] == p for q in paths)]
    if unknown:
        raise ValueError(f"no parameter path starts with {unknown[0]!r}; paths look like {'/'.join(paths[0])!r}")
    return jax.tree_util.tree_map_with_path(lambda path, old, new: new if match(_path(path)) else old,
                                            params, fresh)


def _path(path):
    """A jax key path -> tuple of str names (dict keys, sequence indices, attributes)."""
    return tuple(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def cascade(params, init, key, levels):
    """Cascading randomisation (Adebayo et al. 2018): ``{level: params}``.

    ``levels`` is a sequence of ``(name, prefixes)`` from the top of the
    network down; level i re-initialises the prefixes of levels 0..i (``None``
    meaning every parameter), all from the same ``init(key)``, so each level
    contains the previous one's random layers.
    """
    out, so_far = {}, []
    for name, prefixes in levels:
        so_far = None if (prefixes is None or so_far is None) else so_far + list(prefixes)
        out[name] = randomize(params, init, key, only=None if so_far is None else tuple(so_far))
    return out


def rank_similarity(a, b):
    """Spearman rank correlation of maps a, b (N, ..., H, W) -> (N, ...); nan where either is constant."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape or a.ndim < 3:
        raise ValueError(f"maps must have the same shape (N, ..., H, W); got {a.shape} and {b.shape}")
    fa, fb = a.reshape(*a.shape[:-2], -1), b.reshape(*b.shape[:-2], -1)
    constant = (fa.max(-1) == fa.min(-1)) | (fb.max(-1) == fb.min(-1))
    return np.where(constant, np.nan, np.asarray(similarity.spearman(a, b)))


def randomization_test(explain, params, randomized):
    """Mean Spearman between trained and randomised maps, per method and level.

    explain: ``{method: fn(params) -> maps (N, ..., H, W)}`` (each closes over
    its images and targets); params: the trained parameters; randomized:
    ``{level: [params, ...]}``, one or more random draws per level (e.g. from
    :func:`cascade` with different keys). For each map, rho = Spearman(trained
    map, randomised map); returns ``{method: {level: {"spearman": mean over
    draws of the mean rho over maps, "draws": [mean rho of each draw],
    "maps": maps per draw, "constant": pairs left out because one map is
    constant (rho undefined)}}}``. A method that passes the check has a low
    mean; identical parameters give 1. A draw whose maps are all constant
    has no rho (None), and a level with no defined draw has none either.
    """
    out = {}
    for method, fn in explain.items():
        reference = np.asarray(fn(params))
        out[method] = {}
        for level, draws in randomized.items():
            if not isinstance(draws, (list, tuple)) or not draws:
                raise ValueError(f"randomized[{level!r}] must be a non-empty list of parameter draws")
            means, constant = [], 0
            for p in draws:
                rho = rank_similarity(reference, np.asarray(fn(p))).ravel()
                ok = rho[np.isfinite(rho)]
                means.append(float(ok.mean()) if len(ok) else None)   # None: every map constant (a dead network)
                constant += int(rho.size - len(ok))
            defined = [m for m in means if m is not None]
            out[method][level] = {"spearman": float(np.mean(defined)) if defined else None, "draws": means,
                                  "maps": int(rho.size), "constant": constant}
    return out
