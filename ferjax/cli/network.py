"""The `network` stage: which network the study explains, scored on the people's 2AFC trials.

It is the one the `train` stage trained, or one trained elsewhere and
imported from a file (Keras, PyTorch, ferjax's exported format;
:mod:`ferjax.networks.importers`). Either way the stage writes one folder that the
later stages read (:func:`ferjax.networks.saved.load_network`), and scores the network on the
people's trials, on the pairs of classes it knows. Its explanations:
:mod:`ferjax.cli.attribute`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pandas as pd

from ferjax.analysis import stats
from ferjax.faces import images
from ferjax.faces.labels import NAMES
from ferjax.networks import answers, importers, interface, saved
from ferjax.people import clicklogs
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import stamp

SOURCES = ("train", "keras", "torch", "exported")


def _kwargs(text):
    """--model-kwargs: a JSON object (empty: none)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InputError("--model-kwargs", None, f"{text!r} is not a JSON object", 'e.g. {"num_classes": 7}')
    return value


def _floats(text, what):
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise InputError(what, None, f"{text!r} is not a number or comma-separated numbers") from None
    return values[0] if len(values) == 1 else values


@click.command("network")
@click.option("--source", type=click.Choice(SOURCES), default="train", show_default=True,
              help="train: the network `ferjax train` trained (FILE is its folder); keras: a Keras 3 model (.keras, "
                   ".h5, .hdf5); torch: a PyTorch state_dict checkpoint (with --model), or a module saved whole "
                   "(with --allow-pickle); exported: ferjax's exported format.")
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
@click.option("--input-size", default=None,
              help="PyTorch networks: input side in pixels, or HEIGHTxWIDTH (e.g. 64x48).")
@click.option("--input-channels", type=click.Choice(["1", "3"]), default=None, help="PyTorch networks: 1 or 3.")
@click.option("--model", default=None,
              help="PyTorch state_dict checkpoints: the model's class (or factory), as package.module:Class; "
                   "FILE is read with torch.load(weights_only=True).")
@click.option("--model-kwargs", default=None,
              help="PyTorch: the keyword arguments of --model, as a JSON object (e.g. '{\"num_classes\": 7}').")
@click.option("--allow-pickle", is_flag=True,
              help="PyTorch: read a module saved whole with torch.save(module); unpickling runs code the file "
                   "names, so only for files you trust.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli`: the 2AFC trial list the network is scored on.")
@click.option("--logs", type=click.Path(path_type=Path), default=None,
              help="Click logs: also score the network on what each participant saw.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None)
@_user_errors
def network_cmd(source, file, layer, labels, input_mean, input_std, input_size, input_channels, model, model_kwargs,
                allow_pickle, stimuli_dir, logs, out, metrics, plots):
    """Choose the network the study explains, and score it on the people's 2AFC trials.

    \b
    With --source train, OUT is a copy of the `train` stage's network.
    Imported networks are split after LAYER (its output is what CAM, GradCAM
      and Extremal Perturbation explain), keep their own class order (LABELS
      maps it onto AffectNet's eight) and their own input size and channels
      (the stimuli are resized and converted for them), and are saved in
      ferjax's exported format (ferjax.networks.importers.exported), which later
      stages load without Keras or PyTorch.

    Then the network answers each stimulus's 2AFC trial (the true class
    against the foil: the larger of the two logits) and, with LOGS, what each
    participant had uncovered when choosing (the original where uncovered,
    the 70x70-blurred grayscale elsewhere). Trials of a class the network
    does not know (FER2013 has no contempt) are left out. OUT gets
    stimuli_2afc.csv and seen_2afc.csv (empty `correct` where left out),
    METRICS the percent correct with Wilson 95% intervals, PLOTS
    model_pairs.csv.

    A final softmax or log-softmax is left out (explanations are of the
    logits), and the log says so.

    Params (section `network`): source, file, layer, labels, input_mean,
    input_std, input_size, input_channels, model, model_kwargs, allow_pickle.
    """
    mean, std = _floats(input_mean, "--input-mean"), _floats(input_std, "--input-std")
    with files.atomic_path(out, directory=True) as tmp:
        if source == "train":
            for name in ("model.json", "params.npz"):
                if not (Path(file) / name).is_file():
                    raise InputError(Path(file) / name, None, "file not found", "run `ferjax train` first")
                shutil.copyfile(Path(file) / name, tmp / name)
        else:
            from ferjax.networks.importers import exported

            net = importers.load(source, file, layer, importers.parse_labels(labels), mean, std,
                                 importers.parse_size(input_size) if input_size else None,
                                 int(input_channels) if input_channels else None, model=model,
                                 model_kwargs=_kwargs(model_kwargs), allow_pickle=allow_pickle)
            try:
                exported.save(tmp / "exported", net)
            except ValueError as err:
                raise InputError(file, None, str(err), "the network must work on any batch size") from None
            for name in exported.FILES:
                shutil.move(str(tmp / "exported" / name), str(tmp / name))
            (tmp / "exported").rmdir()
        params, features, head, spec = saved.load_network(tmp)
        size, channels = interface.input_hw(spec), spec["channels"]
        trials = pd.read_csv(Path(stimuli_dir) / "trials.csv")
        shown = images.read_stimuli(stimuli_dir, trials["filename"], channels)
        stim = trials.assign(correct=answers.answers(params, features, head, spec,
                                                     images.to_model_input(shown, size, channels),
                                                     trials["true"], trials["foil"]))
        files.write_csv(tmp / "stimuli_2afc.csv", stim)
        summary = {"source": source, "layer": spec.get("layer"), "input": [*size, channels],
                   "classes_known": [NAMES[c] for c in range(len(NAMES)) if answers.label_map(spec)[c] >= 0],
                   "two_afc": answers.summary(stim["correct"], stim["true"])}
        if logs is not None:
            log_trials, log_clicks = clicklogs.load_logs(logs, size=shown.shape[1])
            index = {f: i for i, f in enumerate(trials["filename"])}
            missing = sorted(set(log_trials["filename"]) - set(index))
            if missing:
                raise InputError(logs, f"image '{missing[0]}'", "is not in the stimulus trial list",
                                 "--logs and --stimuli must come from the same study")
            seen = log_trials.assign(model_seen=answers.seen_answers(
                params, features, head, spec, shown, log_trials, log_clicks,
                log_trials["filename"].map(index).to_numpy()))
            files.write_csv(tmp / "seen_2afc.csv", seen)
            summary["two_afc_seen"] = answers.summary(seen["model_seen"], seen["true"])
        files.write_json(tmp / "provenance.json", stamp(
            {"source": source, "file": str(file), "layer": layer, "labels": labels, "input_mean": mean,
             "input_std": std, "input_size": input_size, "input_channels": input_channels,
             **({"model": model, "model_kwargs": _kwargs(model_kwargs)} if model else {}),
             **({"allow_pickle": True} if allow_pickle else {})}))
    if plots:
        rows = []
        for (t, f), g in stim.dropna(subset=["correct"]).groupby(["true", "foil"]):
            lo, hi = stats.wilson(int(g["correct"].sum()), len(g))
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
    click.echo(f"{source} network ({size[0]}x{size[1]}x{channels}"
               + (f", explained at {spec.get('layer')}" if spec.get("layer") else "")
               + (f", logits {spec['logits']}" if "left out" in spec.get("logits", "") else "")
               + f"): 2AFC on the stimuli {two['percent_correct']:.3f} over {two['trials']} trials it can answer"
               + (f", on what people saw {summary['two_afc_seen']['percent_correct']:.3f}" if logs else ""))
