"""Explain a study's stimuli: CAM, GradCAM and Extremal Perturbation of every stimulus the network answers.

Each stimulus is explained by the network that answered it: the 8-way one
(its outputs mapped to AffectNet's classes), or in one_vs_one mode the
binary network of its (true, foil) pair (:func:`ferjax.networks.answers.groups`),
for two targets: the true class (``true``) and the true-minus-foil contrast
(``contrast``). Batches are split over every process's devices, and an
image's maps do not depend on the devices or processes it ran on.
"""

from __future__ import annotations

import jax
import numpy as np

from ferjax.explain import activation
from ferjax.explain.perturbation import extremal_perturbation
from ferjax.networks import interface
from ferjax.plumbing import distributed


def explain_stimuli(network, load, n, parts, *, areas, variant, max_iter, step, sigma, jitter, scale_to, preset,
                    ep_targets, batch, mesh, progress=None):
    """Maps of ``n`` stimuli -> ``(result, cam_note, images_read)``.

    ``network`` is ``(params, features, head, spec)``; ``load(rows)`` gives the
    stimuli ``rows`` as the network's input (each process loads only the rows
    its devices hold); ``parts`` is ``[(k, rows, true_index, foil_index)]``:
    network k answers the stimuli ``rows``. ``result`` holds ``cam_<target>``
    and ``gradcam_<target>`` (n, H, W), ``ep_<target>`` (n, len(areas), H, W)
    with ``ep_<target>_reward`` and ``_area`` (n, len(areas)) for the targets in
    ``ep_targets``. A head that CAM cannot use (not GAP followed by an affine
    map) leaves CAM out, with the reason in ``cam_note``; the others go on.
    The Extremal Perturbation settings are those of
    :func:`ferjax.explain.perturbation.extremal_perturbation`.
    """
    params, features, head, spec = network
    hw, images_read = interface.input_hw(spec), 0
    result, cam_note = {}, None
    methods = [("cam", activation.cam), ("gradcam", activation.gradcam)]
    for k, rows_k, t_k, f_k in parts:
        p = jax.tree.map(lambda a: a[k], params) if spec.get("mode") == "one_vs_one" else params
        for start in range(0, len(rows_k), batch):
            rows, t_idx, f_idx = rows_k[start:start + batch], t_k[start:start + batch], f_k[start:start + batch]
            # The batch is one global array over every process's devices, padded to fill
            # them; a process reads only the rows its devices hold.
            b, mine = len(rows), distributed.rows(len(rows), mesh)
            x = distributed.global_rows(mesh, load(rows[mine]), b)
            images_read += len(np.unique(mine))
            full = distributed.padded_rows(b, mesh)
            targets = {"true": t_idx[full], "contrast": np.stack([t_idx, f_idx], 1)[full]}
            for name, tgt in targets.items():
                for method, fn in methods:
                    try:
                        maps = distributed.to_host(fn(features, head, p, x, tgt))[:b]
                    except ValueError as err:
                        if method != "cam":
                            raise
                        cam_note = str(err)   # a head CAM cannot use: CAM is left out, the others go on
                        methods = [m for m in methods if m[0] != "cam"]
                        continue
                    result.setdefault(f"{method}_{name}", np.zeros((n, *hw), np.float32))[rows] = maps
                if name not in ep_targets:
                    continue
                ep = extremal_perturbation(
                    features, head, p, x, tgt, areas=areas, variant=variant, max_iter=max_iter,
                    step=step, sigma=sigma, jitter=jitter, scale_to=scale_to, preset=preset)
                result.setdefault(f"ep_{name}", np.zeros((n, len(areas), *hw), np.float32))[rows] = \
                    distributed.to_host(ep["masks"])[:b]
                for key in ("reward", "area"):
                    result.setdefault(f"ep_{name}_{key}", np.zeros((n, len(areas)), np.float32))[rows] = \
                        distributed.to_host(ep[key])[:b]
            if progress is not None:
                progress(len(rows))
    for key in [k for k in result if k.startswith("cam_")] if cam_note else []:
        del result[key]   # CAM failed on a later group: keep no partial CAM maps
    return result, cam_note, images_read
