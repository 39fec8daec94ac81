"""The study's sanity checks of its explanations: pointing game and model randomisation.

:mod:`ferjax.explain.sanity` defines the checks on arrays; this runs them on
the study: the network that was explained, its stimuli, the attribution's
maps and the Extremal Perturbation settings they were made with. The
explanations are re-run split over every process's devices, as the
`attribute` stage runs them.
"""

from __future__ import annotations

import jax
import numpy as np

from ferjax.explain import activation, sanity
from ferjax.explain.perturbation import extremal_perturbation
from ferjax.faces.labels import NAMES
from ferjax.networks import answers, interface
from ferjax.networks.saved import init_function
from ferjax.plumbing import devices, distributed

POINTING_EP_AREAS = (0.025, 0.05, 0.1, 0.2)  # TorchRay's pointing-game benchmark (VOC 2007)


def sanity_checks(network, images, index, attributions, ep_settings, ground_truth=None, *, seed=0, tolerance=15.0,
                  ep_areas=POINTING_EP_AREAS, ep_images=16, draws=5, keep_maps=False) -> dict:
    """The attribution sanity checks of :mod:`ferjax.explain.sanity` on the study: metrics/sanity.json.

    ``network`` is ``(params, features, head, spec)`` (:func:`ferjax.networks.saved.load_network`);
    ``images`` (N, size, size, channels) the stimuli as the network's input, in the order of ``index``
    (the attribution's index.csv: filename, true, foil); ``attributions`` the attribution's maps.npz;
    ``ep_settings`` the settings the attribution ran Extremal Perturbation with (its provenance);
    ``ground_truth`` ``(intensities, regions)`` of the stimuli's action units, or None.

    Pointing game, with the protocol of TorchRay's pointing-game benchmark
    (the reference implementation of Extremal Perturbation): the true-class
    maps of the stimuli the network classifies correctly (8-way argmax;
    one_vs_one: the pair network's answer) and that have AU ground truth
    (neutral faces have none), against the union of
    their expression's AU regions, at the model's input size. ``tolerance``
    is in pixels at 224 px (Zhang et al.'s 15) and scales with the map side
    (4.3 px at 64). The saved maps are scored, and EP
    once more as that benchmark points with it: Extremal Perturbation on those
    stimuli at ``ep_areas`` (its 0.025, 0.05, 0.1, 0.2) with the attribution's
    other settings, the masks summed (areas the attribution already has are
    reused, the others run here). Each method reports the
    hit rate, TorchRay's class-averaged rate and the strict rate (tolerance 0);
    with ``keep_maps`` the pointing game's entry also holds the scored maps
    (``maps``: name -> (n, H, W)) and their stimulus ``rows``.
    Model randomisation: the network
    re-initialised with its own initialisers ``draws`` times (keys
    ``fold_in(key(seed), d)``), cascading from the head ("head") to every
    layer ("all"); CAM and GradCAM recomputed on every stimulus, Extremal
    Perturbation with ``ep_settings`` on ``ep_images`` stimuli spread evenly over
    the index (0: none).
    """
    params, features, head, spec = network
    head, ep = interface.as_head(head), ep_settings
    n = len(index)
    true, foil = index["true"].to_numpy(), index["foil"].to_numpy()
    ovo, batch = spec.get("mode") == "one_vs_one", int(ep.get("batch", 35))
    groups = answers.groups(spec, true, foil)

    mesh = devices.data_mesh(None)

    def explain(fn, rows_subset=None, size=batch):
        """``params -> maps`` of ``fn`` on the stimuli (or ``rows_subset``), each by its network, ``size`` a call.

        Each call's images are one array over every process's devices (padded
        to fill them), as in `ferjax attribute`.
        """
        def run(p):
            out = None
            for k, rows, t, _ in groups:
                pick = np.ones(len(rows), bool) if rows_subset is None else np.isin(rows, rows_subset)
                pk = jax.tree.map(lambda a, k=k: a[k], p) if ovo else p
                for s in range(0, int(pick.sum()), size):
                    r, tk = rows[pick][s:s + size], t[pick][s:s + size]
                    full = distributed.padded_rows(len(r), mesh)
                    x = distributed.global_rows(mesh, images[r][distributed.rows(len(r), mesh)], len(r))
                    m = distributed.to_host(fn(features, head, pk, x, tk[full]))[:len(r)]
                    out = np.zeros((n, *m.shape[1:]), np.float32) if out is None else out
                    out[r] = m
            return out if rows_subset is None else out[rows_subset]
        return run

    # Which stimuli the network classifies correctly: its argmax over all its classes is the true one
    # (one_vs_one: its pair network's 2AFC answer).
    correct = np.zeros(n, bool)
    for k, rows, t, f in groups:
        pk = jax.tree.map(lambda a, k=k: a[k], params) if ovo else params
        z = np.concatenate([np.asarray(head(pk, features(pk, images[rows[s:s + batch]])))
                            for s in range(0, len(rows), batch)])
        correct[rows] = z[np.arange(len(rows)), t] > z[np.arange(len(rows)), f] if ovo else z.argmax(1) == t
    areas = [float(a) for a in np.atleast_1d(attributions["areas"])] if "ep_true" in attributions else []
    maps = {f"{label} true": attributions[f"{key}_true"] for key, label in (("cam", "CAM"), ("gradcam", "GradCAM"))
            if f"{key}_true" in attributions}   # CAM is missing for a head it cannot use
    maps.update({f"EP {a:g} true": attributions["ep_true"][:, i] for i, a in enumerate(areas)})

    settings = {k: ep[k] for k in ("variant", "max_iter", "step", "sigma", "scale_to", "jitter", "preset")}

    def ep_masks(areas):
        def fn(features, head, p, x, t):
            return extremal_perturbation(features, head, p, x, t, areas=tuple(areas), **settings)["masks"]
        return fn

    pointing = None
    if ground_truth is not None:
        intensities, au_regions = ground_truth
        hw = attributions["gradcam_true"].shape[-2:]
        side = (hw[0] + hw[1]) / 2   # the tolerance scales with the map's mean side (non-square networks)
        regions = sanity.expression_regions(au_regions, intensities, true, size=hw)
        has = regions.any((1, 2))
        keep = correct & has
        rows, labels = np.flatnonzero(keep), true[keep]
        tolerance_px = float(tolerance) * side / 224.0
        pointing = {"images": int(keep.sum()), "without_regions": int((~has).sum()),
                    "misclassified": int((has & ~correct).sum()), "tolerance": float(tolerance),
                    "tolerance_px": tolerance_px, "ties": "all",
                    "region_share": float(regions[keep].mean()) if keep.any() else None, "methods": {}}
        scored = {name: m[keep] for name, m in maps.items()}
        if ep_areas and len(rows):
            # areas the attribute stage already ran (same settings, same network) are reused
            saved = {a: attributions["ep_true"][rows, i] for i, a in enumerate(areas) if a in ep_areas}
            missing = [a for a in ep_areas if a not in saved]
            total = sum(saved.values()) if saved else 0.0
            if missing:
                total = total + explain(ep_masks(missing), rows)(params).sum(1)
            scored[f"EP {'+'.join(f'{a:g}' for a in ep_areas)} true"] = total
        for name, m in scored.items():
            hits = sanity.pointing_game(m, regions[keep], tolerance=tolerance_px)
            strict = sanity.pointing_game(m, regions[keep])
            by_class = {NAMES[c]: float(hits[labels == c].mean()) for c in np.unique(labels)}
            pointing["methods"][name] = {
                "hit_rate": float(hits.mean()) if len(hits) else None, "hits": int(hits.sum()),
                "class_mean": float(np.mean(list(by_class.values()))) if by_class else None,
                "strict_hit_rate": float(strict.mean()) if len(strict) else None, "by_class": by_class}
        if keep_maps:
            pointing.update(maps=scored, rows=rows)

    init, levels = init_function(spec, params), {"head": [], "all": []}
    head_prefixes = spec.get("head_params", ["head"])   # ferjax's own networks call their classifier "head"
    for d in range(draws):
        drawn = sanity.cascade(params, init, jax.random.fold_in(jax.random.key(seed), d),
                               [("head", head_prefixes), ("all", None)])
        for level, p in drawn.items():
            levels[level].append(p)
    # the `batch` setting sizes EP's calls; one forward (and backward) pass per image can take more at once
    wide = max(batch, 128)
    methods = {name: explain(fn, size=wide) for name, fn in (("CAM true", activation.cam),
                                                           ("GradCAM true", activation.gradcam)) if name in maps}
    ep_rows = np.unique(np.linspace(0, n - 1, min(ep_images, n)).round().astype(int)) if ep_images else []
    if areas and len(ep_rows):
        methods[f"EP {','.join(f'{a:g}' for a in areas)} true"] = explain(ep_masks(areas), ep_rows)
    randomization = {"scheme": "cascading: the head re-initialised ('head'), then every layer ('all')",
                     "seed": seed, "draws": draws, "ep_images": len(ep_rows),
                     "methods": sanity.randomization_test(methods, params, levels)}
    return {"pointing_game": pointing, "randomization": randomization}


def sanity_text(checks) -> str:
    """The sanity checks' lines of the stage log."""
    lines = []
    pg = checks["pointing_game"]
    if pg is None:
        lines.append("pointing game: skipped (the stimuli have no AU ground truth, stimuli/regions.npz)")
    else:
        share = "n/a" if pg["region_share"] is None else f"{pg['region_share']:.1%}"
        lines.append(f"pointing game (peak of the true-class map within {pg['tolerance_px']:.1f} px of the "
                     f"expression's AU regions; {pg['images']} correctly classified stimuli with AU regions, which "
                     f"cover {share} of the image) [class mean; strict, 0 px]:")
        for name, v in pg["methods"].items():
            rate = v["hit_rate"]
            lines.append(f"  {name:26s} " + ("n/a" if rate is None else
                                             f"{rate:.3f} [{v['class_mean']:.3f}; {v['strict_hit_rate']:.3f}]")
                         + ("  (below 0.90)" if rate is not None and rate < 0.9 else ""))
    rnd = checks["randomization"]
    lines.append(f"model randomisation (Spearman with the trained network's maps, mean over images and "
                 f"{rnd['draws']} random draws [range over draws]; cascading head -> all):")
    for name, levels in rnd["methods"].items():
        def rho(v):
            draws = [d for d in v["draws"] if d is not None]
            if v["spearman"] is None:
                return "n/a (every map constant)"
            return f"{v['spearman']:.3f} [{min(draws):.2f}, {max(draws):.2f}]"
        parts = [f"{lvl} {rho(v)}" + (f" ({v['constant']} constant maps left out)" if v["constant"] else "")
                 for lvl, v in levels.items()]
        worst = max((v["spearman"] for v in levels.values() if v["spearman"] is not None), default=0.0)
        lines.append(f"  {name:18s} " + ", ".join(parts) + ("" if worst < 0.5 else "  (not below 0.5)"))
    return "\n".join(lines)


