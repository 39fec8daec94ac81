"""How much the study's conclusion depends on its analysis choices (a multiverse analysis).

Park & Wallraven concluded that Extremal Perturbation fits the human maps
best, from one analysis: Dice at one threshold, per ordered pair, maps from
all trials. This module reruns the comparison over every combination of the
choices a reader might have made instead (Steegen, Tuerlinckx, Gelman &
Vanpaemel, "Increasing transparency through a multiverse analysis",
Perspect. Psychol. Sci. 2016; the specification curve of Simonsohn, Simmons
& Nelson, Nat. Hum. Behav. 2020):

* ``metric``: Dice of the top 5, 10, 20 or 30% of pixels, or Spearman's rho
  (:mod:`ferjax.analysis.similarity`'s definitions);
* ``human``: maps from all trials or from correct trials only;
* ``map_size``: the side at which maps are compared (bilinear, antialiased);
* ``sigma``: extra Gaussian smoothing of the human maps, in display pixels
  (as Harmonization smooths click maps), on top of the human stage's own;
* ``ep_area``: which of the attribution's Extremal Perturbation areas stands
  for EP;
* ``level``: per image, or per ordered pair (the reference's 56 maps: each
  image map min-max normalised, then summed over the pair);
* ``target``: the true class's explanation, or the true-minus-foil contrast.

In each variant the candidates are CAM, GradCAM and EP for the target, and
the baselines of :mod:`ferjax.analysis.ranking` (centre, face prior, shuffled). A
candidate's score is its mean over items. Nothing is recomputed per variant
that does not change with it: each set of maps is ranked once (ordinal ranks
for top-k Dice, average ranks for Spearman), and a variant's scores come
from those ranks.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ferjax.analysis import correlation, mapops, ranking
from ferjax.faces import images
from ferjax.plumbing.errors import InputError

DIMENSIONS = ("metric", "human", "map_size", "sigma", "ep_area", "level", "target")
METHODS = ("CAM", "GradCAM", "EP")
DEFAULT_GRID = {"metric": ["dice@0.05", "dice@0.1", "dice@0.2", "dice@0.3", "spearman"],
                "human": ["all", "correct"], "map_size": [32, 64, 128], "sigma": [0, 8, 16],
                "ep_area": None, "level": ["image", "pair"], "target": ["true", "contrast"]}


def check_grid(grid, areas, targets, where="--grid") -> dict:
    """``grid`` with the defaults filled in, each value a list; InputError naming the bad key.

    ``areas`` are the attribution's EP areas (what ``ep_area`` may pick from;
    None picks them all) and ``targets`` the targets it has EP maps for.
    """
    grid = dict(grid or {})
    unknown = sorted(set(grid) - set(DEFAULT_GRID))
    if unknown:
        raise InputError(where, f"key '{unknown[0]}'", "is not an analysis choice",
                         f"choose from {', '.join(DEFAULT_GRID)}")
    out = {k: (DEFAULT_GRID[k] if grid.get(k) is None and k != "ep_area" else grid.get(k, DEFAULT_GRID[k]))
           for k in DEFAULT_GRID}
    areas = [float(a) for a in np.atleast_1d(areas)]
    out["ep_area"] = areas if out["ep_area"] is None else out["ep_area"]
    allowed = {"metric": lambda v: v == "spearman" or (str(v).startswith("dice@") and _fraction(v[5:])),
               "human": lambda v: v in ("all", "correct"),
               "map_size": lambda v: isinstance(v, int) and v >= 8,
               "sigma": lambda v: isinstance(v, (int, float)) and v >= 0,
               "ep_area": lambda v: isinstance(v, (int, float)) and float(v) in areas,
               "level": lambda v: v in ("image", "pair"),
               "target": lambda v: v in targets}
    hints = {"metric": "dice@<fraction in (0, 1)> or spearman", "human": "all or correct",
             "map_size": "an integer side of at least 8 pixels", "sigma": "display pixels >= 0",
             "ep_area": f"one of the attribution's areas {areas} (attribute.areas)",
             "level": "image or pair", "target": f"one of the targets with EP maps: {', '.join(targets)}"}
    for key, values in out.items():
        values = values if isinstance(values, (list, tuple)) else [values]
        if key == "target":  # YAML reads an unquoted `true` as a boolean
            values = ["true" if v is True else v for v in values]
        if not values:
            raise InputError(where, f"key '{key}'", "is empty", f"give at least one value: {hints[key]}")
        for v in values:
            if not allowed[key](v):
                raise InputError(where, f"key '{key}'", f"{v!r} is not a valid choice", hints[key])
        out[key] = [float(v) if key in ("sigma", "ep_area") else v for v in values]
    return out


def steps(grid: dict) -> int:
    """How many times :func:`run` reports progress for ``grid``."""
    return len(grid["map_size"]) * len(grid["human"]) * len(grid["sigma"]) * len(grid["level"])


def _fraction(text) -> bool:
    try:
        return 0 < float(text) < 1
    except ValueError:
        return False


def ranks(maps):
    """(M, H, W) maps -> ``(ordinal, average)`` ranks of their pixels from the largest, each (M, H * W).

    Ordinal ranks for top-k Dice (ties in pixel order, as
    :func:`ferjax.analysis.similarity.top_mask` orders them), average ranks
    for Spearman (:func:`ferjax.analysis.correlation.ranks`).
    """
    maps = np.asarray(maps, np.float32)
    return correlation.ranks(maps.reshape(len(maps), -1))


def scores(a, b, tops) -> dict:
    """Per-item Dice at each top fraction and Spearman's rho of two ranked map sets (``ranks``).

    Dice@t = |A n B| / k with A, B the k = round(t P) top pixels of each map
    (:func:`ferjax.analysis.similarity.dice`: exactly k pixels each, ties broken by index);
    Spearman = Pearson of the average ranks (:func:`ferjax.analysis.similarity.spearman`).
    """
    dice, rho = _scores(*a, *b, tuple(float(t) for t in tops))
    out = {f"dice@{t:g}": np.asarray(d, np.float64) for t, d in zip(tops, dice)}
    out["spearman"] = np.asarray(rho, np.float64)
    return out


@functools.partial(jax.jit, static_argnames="tops")
def _scores(oa, ra, ob, rb, tops):
    n = oa.shape[-1]
    dice = []
    for t in tops:
        k = int(np.clip(np.round(np.float32(t) * n), 0, n))
        inter = ((oa < k) & (ob < k)).sum(-1)
        dice.append(inter / k if k else jnp.full(oa.shape[0], jnp.nan))
    return dice, correlation.pearson(ra, rb)


def _tops(metrics):
    return tuple(sorted({float(m.split("@")[1]) for m in metrics if m.startswith("dice@")}))


def run(human_maps: dict, method_maps: dict, areas, filenames, trials, grid: dict, *, seed: int = 0,
        progress=None, items: list | None = None) -> pd.DataFrame:
    """Every variant's candidate scores: one row per variant, a column per candidate.

    Args:
      human_maps: {"all": (N, F, F), "correct": (N, F, F)} at the display frame.
      method_maps: {(method, target): maps} with maps (N, h, w) for CAM and
        GradCAM and (N, areas, h, w) for EP.
      areas: the EP areas of ``method_maps``; filenames and trials give the
        ordered pair of each image.
      grid: lists of values per dimension (``DEFAULT_GRID``'s keys; ep_area
        None means all ``areas``).
    Returns the table of variants: the dimension columns, then one score
    column per candidate (CAM, GradCAM, EP and the baselines). A list given
    as ``items`` gets each variant's per-item scores, (N, candidates) in the
    table's column order, for :func:`ferjax.analysis.differences.variant_calls`.
    """
    metrics, tops = list(grid["metric"]), _tops(grid["metric"])
    areas = [float(a) for a in np.atleast_1d(areas)]
    ep_areas = areas if grid.get("ep_area") is None else [float(a) for a in grid["ep_area"]]
    frame = next(iter(human_maps.values())).shape[-1]
    rows = []
    for size in grid["map_size"]:
        # the methods' maps do not depend on the human side: ranked once per size and level
        resized = {}
        for (method, target), m in method_maps.items():
            if method == "EP":
                for a in ep_areas:
                    resized[method, target, a] = images.resize(m[:, areas.index(a)], size)
            else:
                resized[method, target, None] = images.resize(m, size)
        ranked = {"image": {k: ranks(m) for k, m in resized.items()},
                  "pair": {k: ranks(mapops.pair_maps(m, filenames, trials)[0]) for k, m in resized.items()}}
        n_items = {"image": len(filenames), "pair": len(mapops.pair_maps(resized[next(iter(resized))], filenames,
                                                                         trials)[0])}
        centre = {level: ranks(np.broadcast_to(ranking.center(size, size), (n, size, size)))
                  for level, n in n_items.items()}
        for which, sigma in itertools.product(grid["human"], grid["sigma"]):
            people = human_maps[which]
            if sigma:
                people = np.asarray(mapops.smooth(jnp.asarray(people), mapops.gaussian_matrix(frame, float(sigma))))
            people = images.resize(people, size)
            for level in grid["level"]:
                ref = people if level == "image" else mapops.pair_maps(people, filenames, trials)[0]
                ref_ranked = ranks(ref)
                perm = ranking.derangement(len(ref), seed)   # the shuffled baseline: another item's human map

                base = {"center": scores(centre[level], ref_ranked, tops),
                        "face prior": scores(ranks(ranking.face_prior(ref)), ref_ranked, tops),
                        "shuffled": scores(tuple(r[perm] for r in ref_ranked), ref_ranked, tops)}
                meth = {k: scores(r, ref_ranked, tops) for k, r in ranked[level].items()}
                for metric, area, target in itertools.product(metrics, ep_areas, grid["target"]):
                    row = {"metric": metric, "human": which, "map_size": int(size), "sigma": float(sigma),
                           "ep_area": area, "level": level, "target": target}
                    per_item = {method: meth[method, target, area if method == "EP" else None][metric]
                                for method in METHODS if (method, target, area if method == "EP" else None) in meth}
                    per_item.update({name: s[metric] for name, s in base.items()})
                    row.update({name: float(np.nanmean(v)) for name, v in per_item.items()})
                    rows.append(row)
                    if items is not None:
                        items.append(np.column_stack(list(per_item.values())))
                if progress is not None:
                    progress(1)
    return pd.DataFrame(rows)


def _credit(table, names):
    """(V, len(names)) first-place credit: 1 for the best candidate of each variant, shared equally among
    candidates tied for first (CAM and GradCAM are the same map on a GAP-linear network)."""
    values = table[list(names)].to_numpy(np.float64)
    values = np.where(np.isnan(values), -np.inf, values)
    first = values >= values.max(1, keepdims=True) - 1e-12
    return first / first.sum(1, keepdims=True)


def winners(table, names):
    """Each variant's winner: the best candidate's name, or the tied names joined by " = "."""
    first = _credit(table, names) > 0
    return np.array([" = ".join(n for n, f in zip(names, row) if f) for row in first], object)


def summarise(variants: pd.DataFrame) -> dict:
    """How often each candidate ranks first, and which choices change the winner.

    Returns ``variants`` (count), ``first_among_methods`` (each of CAM,
    GradCAM and EP's share of the variants in which it scores highest of the
    three; a tie shares the variant), ``first_among_all`` (the same among the
    methods and the baselines), ``flip_rate`` (per dimension: of the pairs of
    variants that differ in that choice alone, the share whose winner among
    the methods differs; None when the grid does not vary it),
    ``most_influential`` (the dimension with the highest flip rate) and
    ``by_choice`` (per dimension and value, each method's share of first
    places).
    """
    dims = [d for d in DIMENSIONS if d in variants]
    everyone = [c for c in variants.columns if c not in dims]
    methods = present(variants)
    credit, credit_all = _credit(variants, methods), _credit(variants, everyone)
    table = variants.assign(_first=winners(variants, methods))
    flips, by_choice = {}, {}
    for dim in dims:
        others = [d for d in dims if d != dim]
        if table[dim].nunique() < 2:
            flips[dim] = None
            continue
        differ = total = 0
        for _, g in table.groupby(others, sort=False):
            k = len(g)
            counts = g["_first"].value_counts().to_numpy()
            total += k * (k - 1) // 2
            differ += k * (k - 1) // 2 - int((counts * (counts - 1) // 2).sum())
        flips[dim] = differ / total if total else None
        by_choice[dim] = {str(v): dict(zip(methods, credit[rows].mean(0).tolist()))
                          for v, rows in table.groupby(dim, sort=True).indices.items()}
    rated = {d: r for d, r in flips.items() if r is not None}
    return {"variants": int(len(table)), "first_among_methods": dict(zip(methods, credit.mean(0).tolist())),
            "first_among_all": dict(zip(everyone, credit_all.mean(0).tolist())), "flip_rate": flips,
            "most_influential": max(rated, key=rated.get) if rated and max(rated.values()) > 0 else None,
            "by_choice": by_choice}


def present(variants: pd.DataFrame) -> list:
    """The explanation methods the variants score (CAM is missing for a head it cannot use)."""
    return [m for m in METHODS if m in variants.columns]


def margins(variants: pd.DataFrame, method: str) -> np.ndarray:
    """Per variant: ``method``'s score minus the best other method's (> 0 where it ranks first)."""
    others = [m for m in present(variants) if m != method]
    return (variants[method] - variants[others].max(axis=1)).to_numpy(np.float64)
