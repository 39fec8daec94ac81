"""The network's answers in the 2AFC task: which of two classes its logits prefer.

A network knows the classes its label map gives (FER2013 has no contempt);
trials whose true class or foil it does not know are left out. In
one_vs_one mode (the reference's) each (true, foil) pair is answered by its
own binary network. The network answers the stimuli as shown in full, and
each trial as the participant saw it when choosing: the uncovered disks in
colour, the rest blurred and grey (:func:`ferjax.faces.display.seen`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ferjax.analysis import stats
from ferjax.faces import display, images
from ferjax.faces.labels import NAMES
from ferjax.networks import interface, train
from ferjax.people import clickmaps


def label_map(spec) -> np.ndarray:
    """(8,) the network's output for each AffectNet class, -1 where it has none."""
    if spec.get("mode") == "one_vs_one":
        return np.arange(len(NAMES))
    outputs = spec.get("num_outputs") or spec["num_classes"]
    labels = spec.get("labels")
    return interface.label_index(range(outputs) if labels is None else labels, outputs)


def groups(spec, true, foil):
    """Which network explains each stimulus it can: ``[(k, rows, true_index, foil_index)]``.

    The multiclass network (k = 0), its outputs mapped from AffectNet's
    classes by the network's label map (stimuli whose true class or foil it
    does not know are left out), or in one_vs_one mode the binary network k of
    each (true, foil) pair, whose outputs are 0 for the lower class and 1 for
    the higher.
    """
    true, foil = np.asarray(true), np.asarray(foil)
    if spec.get("mode") == "one_vs_one":
        net, t_idx, f_idx = train.pair_index(true, foil), (true > foil).astype(int), (foil > true).astype(int)
        known = np.ones(len(true), bool)
    else:
        index = label_map(spec)
        t_idx, f_idx = index[true], index[foil]
        known = (t_idx >= 0) & (f_idx >= 0)
        net = np.zeros(len(true), int)
    return [(int(k), np.flatnonzero(known & (net == k)), t_idx[known & (net == k)], f_idx[known & (net == k)])
            for k in np.unique(net[known])]


def answers(params, features, head, spec, images, true, foil, chunk=256):
    """Whether the network picks ``true`` over ``foil`` on each image: float (N,), nan where it does not
    know one of the two classes."""
    true, foil = np.asarray(true), np.asarray(foil)
    out = np.full(len(true), np.nan)
    if spec.get("source") != "exported":
        out[:] = train.two_afc(params, images, true, foil, model=spec["model"], mode=spec["mode"],
                               num_classes=spec["num_classes"])
        return out
    net = interface.Network(features, interface.as_head(head), params, spec)
    index = label_map(spec)
    for start in range(0, len(true), chunk):
        rows = np.arange(start, min(start + chunk, len(true)))
        t, f = index[true[rows]], index[foil[rows]]
        z = np.asarray(net.logits(np.asarray(images[rows], np.float32)))
        known = (t >= 0) & (f >= 0)
        out[rows[known]] = z[known, t[known]] > z[known, f[known]]
    return out


def seen_answers(params, features, head, spec, shown, trials, clicks, stimulus_rows):
    """Answers on what each participant had uncovered: float (T,) for the T trials of ``trials``.

    ``shown`` (N, S, S, C) are the stimuli at display size in [0, 1];
    ``stimulus_rows`` (T,) the stimulus of each trial; the reveal masks come
    from the clicks (:func:`ferjax.people.clickmaps.trial_masks`).
    """
    size, channels = interface.input_hw(spec), spec["channels"]
    inputs = np.zeros((len(trials), *size, channels), np.float32)
    for rows, masks in clickmaps.trial_masks(trials, clicks, size=shown.shape[1]):
        inputs[rows] = images.to_model_input(np.asarray(display.seen(shown[stimulus_rows[rows]], masks)), size,
                                             channels)
    return answers(params, features, head, spec, inputs, trials["true"], trials["foil"])


def summary(correct, true) -> dict:
    """Percent correct with a Wilson 95% interval, overall and per true class, over the answered trials.

    ``correct`` (N,) float: 1, 0, or nan where the network does not know one of the two classes.
    """
    known = ~pd.isna(correct)
    c, t = np.asarray(correct[known], bool), np.asarray(true[known])
    if not len(c):
        return {"percent_correct": None, "ci95": [None, None], "trials": 0, "per_class": {}}
    lo, hi = stats.wilson(int(c.sum()), len(c))
    per_class = {}
    for cls in np.unique(t):
        k = c[t == cls]
        c_lo, c_hi = stats.wilson(int(k.sum()), len(k))
        per_class[NAMES[cls]] = {"percent_correct": float(k.mean()), "ci95": [float(c_lo), float(c_hi)]}
    return {"percent_correct": float(c.mean()), "ci95": [float(lo), float(hi)], "trials": int(len(c)),
            "left_out": int((~known).sum()), "per_class": per_class}
