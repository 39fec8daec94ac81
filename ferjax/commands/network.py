"""The `network` stage: which network the study explains, scored on the people's 2AFC trials.

It is the one the `train` stage trained, or one trained elsewhere and
imported from a file (Keras, PyTorch, ferjax's exported format;
:mod:`ferjax.importers`). Either way the stage writes one folder that the
later stages read (:func:`load_network`), and scores the network on the
people's trials, on the pairs of classes it knows. Its explanations:
:mod:`ferjax.commands.explain`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ferjax import files, human
from ferjax.commands.training import _stimulus_images, _to_model, load_model
from ferjax.errors import InputError
from ferjax.errors import cli_errors as _user_errors
from ferjax.labels import NAMES
from ferjax.provenance import stamp

SOURCES = ("train", "keras", "torch", "exported")


def load_network(folder):
    """``(params, features, head, spec)`` of the `network` stage's output (or a `train` model folder).

    ``features`` takes images in [0, 1] (N, H, W, C) and applies the
    network's own input normalisation; ``head`` is a classifier of the pooled
    maps (ferjax's own networks) or a :class:`ferjax.network.Head`.
    """
    folder = Path(folder)
    try:
        spec = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(folder / "model.json", None, f"cannot read ({err})", "run `ferjax network` first") \
            from None
    if spec.get("source") == "exported":
        from ferjax.importers import exported

        net = exported.load(folder)
        return net.params, net.features, net.head, net.spec
    return load_model(folder)


def label_map(spec) -> np.ndarray:
    """(8,) the network's output for each AffectNet class, -1 where it has none."""
    from ferjax import network

    if spec.get("mode") == "one_vs_one":
        return np.arange(len(NAMES))
    outputs = spec.get("num_outputs") or spec["num_classes"]
    labels = spec.get("labels")
    return network.label_index(range(outputs) if labels is None else labels, outputs)


def groups(spec, true, foil):
    """Which network explains each stimulus it can: ``[(k, rows, true_index, foil_index)]``.

    The multiclass network (k = 0), its outputs mapped from AffectNet's
    classes by the network's label map (stimuli whose true class or foil it
    does not know are left out), or in one_vs_one mode the binary network k of
    each (true, foil) pair, whose outputs are 0 for the lower class and 1 for
    the higher.
    """
    from ferjax.train import pair_index

    true, foil = np.asarray(true), np.asarray(foil)
    if spec.get("mode") == "one_vs_one":
        net, t_idx, f_idx = pair_index(true, foil), (true > foil).astype(int), (foil > true).astype(int)
        known = np.ones(len(true), bool)
    else:
        index = label_map(spec)
        t_idx, f_idx = index[true], index[foil]
        known = (t_idx >= 0) & (f_idx >= 0)
        net = np.zeros(len(true), int)
    return [(int(k), np.flatnonzero(known & (net == k)), t_idx[known & (net == k)], f_idx[known & (net == k)])
            for k in np.unique(net[known])]


def model_init(spec, params=None):
    """``key -> params``: fresh parameters for model randomisation.

    ferjax's own networks use their own initialisers
    (:func:`ferjax.commands.training.model_init`). An imported network's
    floating-point arrays are redrawn from a zero-mean Gaussian with each
    array's own standard deviation (its own initialiser is not known); its
    normalisation statistics (BatchNorm's moving mean and variance) are kept.
    """
    from ferjax.commands.training import model_init as trained_init

    if spec.get("source") != "exported":
        return trained_init(spec)
    import jax

    stats = ("moving_mean", "moving_variance", "running_mean", "running_var")

    def init(key):
        leaves, tree = jax.tree_util.tree_flatten_with_path(params)
        keys = jax.random.split(key, len(leaves))
        out = []
        for (path, leaf), k in zip(leaves, keys):
            name = str(getattr(path[-1], "key", path[-1]))
            out.append(leaf if name in stats else
                       jax.random.normal(k, np.shape(leaf)) * np.float32(np.std(np.asarray(leaf)) or 1.0))
        return jax.tree_util.tree_unflatten(tree, out)

    return init


def answers(params, features, head, spec, images, true, foil, chunk=256):
    """Whether the network picks ``true`` over ``foil`` on each image: float (N,), nan where it does not
    know one of the two classes."""
    from ferjax import network, train

    true, foil = np.asarray(true), np.asarray(foil)
    out = np.full(len(true), np.nan)
    if spec.get("source") != "exported":
        out[:] = train.two_afc(params, images, true, foil, model=spec["model"], mode=spec["mode"],
                               num_classes=spec["num_classes"])
        return out
    net = network.Network(features, network.as_head(head), params, spec)
    index = label_map(spec)
    for start in range(0, len(true), chunk):
        rows = np.arange(start, min(start + chunk, len(true)))
        t, f = index[true[rows]], index[foil[rows]]
        z = np.asarray(net.logits(np.asarray(images[rows], np.float32)))
        known = (t >= 0) & (f >= 0)
        out[rows[known]] = z[known, t[known]] > z[known, f[known]]
    return out


def _import(source, file, layer, labels, mean, std, size, channels):
    """The network an importer reads (:mod:`ferjax.importers`)."""
    if source == "exported":
        from ferjax.importers import exported

        return exported.load(file)
    if not layer:
        raise InputError("--layer", None, f"a {source} network needs the layer to explain",
                         "give the name of the layer whose output maps are explained")
    if source == "keras":
        from ferjax.importers import keras

        return keras.load(file, layer, labels=labels, mean=mean, std=std)
    if not size or not channels:
        raise InputError("--input-size", None, "a PyTorch network needs its input size and channels",
                         "give --input-size and --input-channels")
    from ferjax.importers import torch as torch_importer

    return torch_importer.load(file, layer, size=size, channels=channels, labels=labels, mean=mean, std=std)


def _labels(text):
    from ferjax.importers import LABEL_MAPS

    if text in (None, ""):
        return None
    if text in LABEL_MAPS:
        return LABEL_MAPS[text]
    try:
        labels = json.loads(text)
    except ValueError:
        raise InputError("--labels", None, f"{text!r} is neither a named label map nor a JSON list",
                         f"use one of {', '.join(LABEL_MAPS)} or e.g. [6, 5, 4, 1, 2, 3, 0]") from None
    if not isinstance(labels, list):
        raise InputError("--labels", None, "must be a JSON list: the AffectNet class of each output, or null")
    return labels


def _floats(text, what):
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise InputError(what, None, f"{text!r} is not a number or comma-separated numbers") from None
    return values[0] if len(values) == 1 else values


@click.command("network")
@click.option("--source", type=click.Choice(SOURCES), default="train", show_default=True,
              help="train: the network `ferjax train` trained (FILE is its folder); keras: a Keras 3 model (.keras, "
                   ".h5, .hdf5); torch: a PyTorch module saved whole with torch.save; exported: ferjax's exported "
                   "format.")
@click.option("--file", "file", type=click.Path(path_type=Path), required=True,
              help="The trained network's folder or file (track your own with `dvc add`).")
@click.option("--layer", default=None, help="Imported networks: the layer whose output maps are explained.")
@click.option("--labels", default=None,
              help="Imported networks: the AffectNet class of each output, as a named map (affectnet, fer2013) or a "
                   "JSON list such as [6, 5, 4, 1, 2, 3, 0] (null for a class AffectNet does not have).")
@click.option("--input-mean", default="0", show_default=True,
              help="Imported networks: their input normalisation (x - MEAN) / STD on images in [0, 1] (one value, "
                   "or one per channel).")
@click.option("--input-std", default="1", show_default=True)
@click.option("--input-size", type=click.IntRange(1), default=None, help="PyTorch networks: input side in pixels.")
@click.option("--input-channels", type=click.Choice(["1", "3"]), default=None, help="PyTorch networks: 1 or 3.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli`: the 2AFC trial list the network is scored on.")
@click.option("--logs", type=click.Path(path_type=Path), default=None,
              help="Click logs: also score the network on what each participant saw.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None)
@_user_errors
def network_cmd(source, file, layer, labels, input_mean, input_std, input_size, input_channels, stimuli_dir, logs,
                out, metrics, plots):
    """Choose the network the study explains, and score it on the people's 2AFC trials.

    \b
    With --source train, OUT is a copy of the `train` stage's network.
    Imported networks are split after LAYER (its output is what CAM, GradCAM
      and Extremal Perturbation explain), keep their own class order (LABELS
      maps it onto AffectNet's eight) and their own input size and channels
      (the stimuli are resized and converted for them), and are saved in
      ferjax's exported format (ferjax.importers.exported), which later
      stages load without Keras or PyTorch.

    Then the network answers each stimulus's 2AFC trial (the true class
    against the foil: the larger of the two logits) and, with LOGS, what each
    participant had uncovered when choosing (the original where uncovered,
    the 70x70-blurred grayscale elsewhere). Trials of a class the network
    does not know (FER2013 has no contempt) are left out. OUT gets
    stimuli_2afc.csv and seen_2afc.csv (empty `correct` where left out),
    METRICS the percent correct with Wilson 95% intervals, PLOTS
    model_pairs.csv.

    Params (section `network`): source, file, layer, labels, input_mean,
    input_std, input_size, input_channels.
    """
    from ferjax import display

    mean, std = _floats(input_mean, "--input-mean"), _floats(input_std, "--input-std")
    with files.atomic_path(out, directory=True) as tmp:
        if source == "train":
            for name in ("model.json", "params.npz"):
                if not (Path(file) / name).is_file():
                    raise InputError(Path(file) / name, None, "file not found", "run `ferjax train` first")
                shutil.copyfile(Path(file) / name, tmp / name)
        else:
            from ferjax.importers import exported

            net = _import(source, file, layer, _labels(labels), mean, std, input_size,
                          int(input_channels) if input_channels else None)
            try:
                exported.save(tmp / "exported", net)
            except ValueError as err:
                raise InputError(file, None, str(err), "the network must work on any batch size") from None
            for name in exported.FILES:
                shutil.move(str(tmp / "exported" / name), str(tmp / name))
            (tmp / "exported").rmdir()
        params, features, head, spec = load_network(tmp)
        size, channels = spec["size"], spec["channels"]
        trials = pd.read_csv(Path(stimuli_dir) / "trials.csv")
        shown = _stimulus_images(stimuli_dir, trials["filename"], size, channels)
        stim = trials.assign(correct=answers(params, features, head, spec, _to_model(shown, size, channels),
                                             trials["true"], trials["foil"]))
        files.write_csv(tmp / "stimuli_2afc.csv", stim)
        summary = {"source": source, "layer": spec.get("layer"), "input": [size, size, channels],
                   "classes_known": [NAMES[c] for c in range(len(NAMES)) if label_map(spec)[c] >= 0],
                   "two_afc": _score(stim["correct"], stim["true"])}
        if logs is not None:
            log_trials, log_clicks = human.load_logs(logs, size=shown.shape[1])
            index = {f: i for i, f in enumerate(trials["filename"])}
            missing = sorted(set(log_trials["filename"]) - set(index))
            if missing:
                raise InputError(logs, f"image '{missing[0]}'", "is not in the stimulus trial list",
                                 "--logs and --stimuli must come from the same study")
            rows_all = log_trials["filename"].map(index).to_numpy()
            inputs = np.zeros((len(log_trials), size, size, channels), np.float32)
            for rows, masks in human.trial_masks(log_trials, log_clicks, size=shown.shape[1]):
                inputs[rows] = _to_model(np.asarray(display.seen(shown[rows_all[rows]], masks)), size, channels)
            seen = log_trials.assign(model_seen=answers(params, features, head, spec, inputs, log_trials["true"],
                                                        log_trials["foil"]))
            files.write_csv(tmp / "seen_2afc.csv", seen)
            summary["two_afc_seen"] = _score(seen["model_seen"], seen["true"])
        files.write_json(tmp / "provenance.json", stamp(
            {"source": source, "file": str(file), "layer": layer, "labels": labels, "input_mean": mean,
             "input_std": std, "input_size": input_size, "input_channels": input_channels}))
    if plots:
        rows = []
        for (t, f), g in stim.dropna(subset=["correct"]).groupby(["true", "foil"]):
            lo, hi = human.wilson(int(g["correct"].sum()), len(g))
            row = {"pair": f"{NAMES[t]} vs {NAMES[f]}", "true": t, "foil": f, "model_full": g["correct"].mean(),
                   "lo": float(lo), "hi": float(hi)}
            if logs is not None:
                s = seen[(seen["true"] == t) & (seen["foil"] == f)]
                row["model_seen"] = s["model_seen"].mean()
            rows.append(row)
        files.write_csv(Path(plots) / "model_pairs.csv", pd.DataFrame(rows))
    if metrics:
        files.write_json(metrics, summary)
    two = summary["two_afc"]
    click.echo(f"{source} network ({size}x{size}x{channels}"
               + (f", explained at {spec.get('layer')}" if spec.get("layer") else "") + f"): 2AFC on the stimuli "
               f"{two['percent_correct']:.3f} over {two['trials']} trials it can answer"
               + (f", on what people saw {summary['two_afc_seen']['percent_correct']:.3f}" if logs else ""))


def _score(correct, true) -> dict:
    """Percent correct with a Wilson 95% interval, overall and per true class, over the answered trials."""
    known = ~pd.isna(correct)
    c, t = np.asarray(correct[known], bool), np.asarray(true[known])
    if not len(c):
        return {"percent_correct": None, "ci95": [None, None], "trials": 0, "per_class": {}}
    lo, hi = human.wilson(int(c.sum()), len(c))
    per_class = {}
    for cls in np.unique(t):
        k = c[t == cls]
        c_lo, c_hi = human.wilson(int(k.sum()), len(k))
        per_class[NAMES[cls]] = {"percent_correct": float(k.mean()), "ci95": [float(c_lo), float(c_hi)]}
    return {"percent_correct": float(c.mean()), "ci95": [float(lo), float(hi)], "trials": int(len(c)),
            "left_out": int((~known).sum()), "per_class": per_class}
