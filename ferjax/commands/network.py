"""Network stages: `train` the expression network and `attribute` its decisions."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
from tqdm import tqdm

from ferjax import files, human
from ferjax.commands.data import _load_dataset_npz
from ferjax.errors import InputError
from ferjax.errors import cli_errors as _user_errors
from ferjax.labels import NAMES
from ferjax.provenance import source_digest, stamp


def _stimulus_images(stimuli_dir, filenames, size, channels):
    """Stimuli as float [0, 1] arrays at their display size (N, S, S, 3 or 1)."""
    from PIL import Image

    out = []
    for name in filenames:
        path = Path(stimuli_dir) / name
        try:
            with Image.open(path) as im:
                out.append(np.asarray(im.convert("RGB" if channels == 3 else "L"), np.float32) / 255.0)
        except OSError as err:
            raise InputError(path, None, f"cannot read stimulus image ({err})") from None
    images = np.stack(out)
    return images if channels == 3 else images[..., None]


def _to_model(images, size, channels):
    """Display-frame images (N, S, S, C) in [0, 1] -> the model's input (N, size, size, channels)."""
    import jax

    from ferjax import display

    x = display.grayscale(images) if channels == 1 else images
    return np.asarray(jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "linear", antialias=True))


@click.command("train")
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Output of `ferjax prepare`.")
@click.option("--splits", type=click.Path(path_type=Path), required=True, help="Output of `ferjax split`.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli`: the 2AFC trial list the network is scored on.")
@click.option("--logs", type=click.Path(path_type=Path), default=None,
              help="Click logs: also score the network on what each participant saw.")
@click.option("--model", "model_name", type=click.Choice(["tiny", "small", "fine", "resnet18"]), default="fine",
              show_default=True,
              help="fine: 16x16 maps on 64-px faces (CAM resolves single action units); small: 8x8 maps, same "
                   "cost; resnet18: real data at 224/256 RGB; tiny: tests.")
@click.option("--mode", type=click.Choice(["multiclass", "one_vs_one"]), default="multiclass", show_default=True,
              help="One 8-way softmax, or one binary classifier per class pair (the reference's).")
@click.option("--steps", type=click.IntRange(1), default=2500, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=3e-3, show_default=True,
              help="Peak AdamW learning rate (linear warm-up, then cosine decay).")
@click.option("--warmup", type=click.IntRange(0), default=50, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(0), default=1e-4, show_default=True)
@click.option("--label-smoothing", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--balanced/--no-balanced", default=True, show_default=True, help="Class-balanced sampling.")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random shift, flip, brightness and contrast inside the compiled step.")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True,
              help="Compute type; bfloat16 is mixed precision for GPUs (parameters stay float32).")
@click.option("--save-every", type=click.IntRange(1), default=250, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model folder to write.")
@click.option("--checkpoints", type=click.Path(path_type=Path), default=None,
              help="Orbax checkpoint folder; a killed run resumes from its last checkpoint.")
@click.option("--metrics", type=click.Path(path_type=Path), default=None)
@click.option("--plots", type=click.Path(path_type=Path), default=None)
@_user_errors
def train_cmd(dataset, splits, stimuli_dir, logs, model_name, mode, steps, batch_size, lr, warmup, weight_decay,
              label_smoothing, balanced, augment, dtype, save_every, seed, out, checkpoints, metrics, plots):
    """Train the expression network and score it on the people's 2AFC trials.

    Trains on the images with role `train` (validation: `val`) and writes
    OUT/params.npz and OUT/model.json (the network: `ferjax.model` name,
    input size and channels, mode). METRICS gets test accuracy, per-class
    accuracy, macro-F1 and the confusion matrix, and the network's 2AFC
    percent correct on the stimulus trial list (each stimulus with its foil),
    per class and overall with Wilson 95% intervals. With LOGS it also scores
    the network on what each participant saw when choosing (original where
    uncovered, the 70x70-blurred grayscale elsewhere). PLOTS gets
    confusion.png and model_pairs.csv (2AFC accuracy per ordered pair).

    Params (section `train`): model, mode, steps, batch_size, lr, warmup,
    weight_decay, label_smoothing, balanced, augment, dtype, save_every, seed.
    """
    import hashlib
    import json

    import jax.numpy as jnp

    from ferjax import display, figures, train

    ds = _load_dataset_npz(dataset)
    splits_csv = Path(splits) / "splits.csv" if Path(splits).is_dir() else Path(splits)
    roles = pd.read_csv(splits_csv)["role"].to_numpy()
    if len(roles) != len(ds["labels"]):
        raise InputError(splits_csv, "column 'role'", "does not match the dataset", "re-run `ferjax split`")
    pick = {r: roles == r for r in ("train", "val", "test")}
    for role in ("train", "test"):
        if not pick[role].any():
            raise InputError(splits_csv, "column 'role'", f"no image has role '{role}'",
                             "raise split.test or use a larger dataset")
    has_val = bool(pick["val"].any())
    config = dict(model=model_name, mode=mode, steps=steps, batch_size=batch_size, lr=lr, warmup=warmup,
                  weight_decay=weight_decay, label_smoothing=label_smoothing, balanced=balanced, augment=augment,
                  dtype=dtype, save_every=save_every, seed=seed)
    jdtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    ckpt = None
    if checkpoints is not None:
        # Checkpoints are only resumed by a run with the same settings, data and code.
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
        digest.update(ds["images"][pick["train"]].tobytes())
        digest.update(source_digest().encode())
        ckpt = Path(checkpoints) / digest.hexdigest()[:16]
    params, history = train.train(
        ds["images"][pick["train"]], ds["labels"][pick["train"]], ds["images"][pick["val"]] if has_val else None,
        ds["labels"][pick["val"]] if has_val else None, model=model_name, mode=mode, steps=steps, batch_size=batch_size, lr=lr,
        warmup=warmup, weight_decay=weight_decay, label_smoothing=label_smoothing, balanced=balanced,
        augment=augment, seed=seed, dtype=jdtype, checkpoint_dir=ckpt, save_every=save_every)
    spec = dict(model=model_name, mode=mode, num_classes=len(NAMES), dtype=jdtype)
    test = train.evaluate(params, ds["images"][pick["test"]], ds["labels"][pick["test"]], **spec)

    size, channels = int(ds["images"].shape[1]), int(ds["images"].shape[-1])
    trials = pd.read_csv(Path(stimuli_dir) / "trials.csv")
    shown = _stimulus_images(stimuli_dir, trials["filename"], size, channels)
    stim = trials.assign(correct=train.two_afc(params, _to_model(shown, size, channels), trials["true"],
                                               trials["foil"], **spec))
    summary = {"test_accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
               "val_accuracy": float(history["val_accuracy"][-1]) if len(history["val_accuracy"]) else None,
               "per_class": {NAMES[c]: float(v) for c, v in enumerate(test["per_class"])},
               "confusion": test["confusion"].tolist(), "steps": steps, "mode": mode, "model": model_name}
    k, n = int(stim["correct"].sum()), len(stim)
    lo, hi = human.wilson(k, n)
    per_class = {}
    for c, g in stim.groupby("true"):
        c_lo, c_hi = human.wilson(int(g["correct"].sum()), len(g))
        per_class[NAMES[c]] = {"percent_correct": float(g["correct"].mean()), "ci95": [float(c_lo), float(c_hi)]}
    summary["two_afc"] = {"percent_correct": k / n, "ci95": [float(lo), float(hi)], "per_class": per_class}
    seen_table = None
    if logs is not None:
        log_trials, log_clicks = human.load_logs(logs, size=shown.shape[1])
        index = {f: i for i, f in enumerate(trials["filename"])}
        missing = sorted(set(log_trials["filename"]) - set(index))
        if missing:
            raise InputError(logs, f"image '{missing[0]}'", "is not in the stimulus trial list",
                             "--logs and --stimuli must come from the same study")
        rows_all = log_trials["filename"].map(index).to_numpy()
        # what each participant saw, at the model's input size; then one 2AFC pass
        # over all trials (per-chunk passes would each pad to the model's batch)
        inputs = np.zeros((len(log_trials), size, size, channels), np.float32)
        for rows, masks in human.trial_masks(log_trials, log_clicks, size=shown.shape[1]):
            inputs[rows] = _to_model(np.asarray(display.seen(shown[rows_all[rows]], masks)), size, channels)
        answers = train.two_afc(params, inputs, log_trials["true"], log_trials["foil"], **spec)
        seen_table = log_trials.assign(model_seen=answers)
        k, n = int(answers.sum()), len(answers)
        lo, hi = human.wilson(k, n)
        summary["two_afc_seen"] = {"percent_correct": k / n, "ci95": [float(lo), float(hi)]}
    pair_rows = []
    for (t, f), g in stim.groupby(["true", "foil"]):
        lo, hi = human.wilson(int(g["correct"].sum()), len(g))
        row = {"pair": f"{NAMES[t]} vs {NAMES[f]}", "true": t, "foil": f, "model_full": g["correct"].mean(),
               "lo": float(lo), "hi": float(hi)}
        if seen_table is not None:
            s = seen_table[(seen_table["true"] == t) & (seen_table["foil"] == f)]
            row["model_seen"] = s["model_seen"].mean()
        pair_rows.append(row)
    pair_table = pd.DataFrame(pair_rows)

    with files.atomic_path(out, directory=True) as tmp:
        files.save_tree(tmp / "params.npz", params)
        files.write_json(tmp / "model.json", {"model": model_name, "mode": mode, "size": size, "channels": channels,
                                              "num_classes": len(NAMES), "dtype": dtype})
        files.write_csv(tmp / "stimuli_2afc.csv", stim)
        if seen_table is not None:
            files.write_csv(tmp / "seen_2afc.csv", seen_table)
        files.write_json(tmp / "provenance.json", stamp(config))
    if plots:
        files.write_csv(Path(plots) / "model_pairs.csv", pair_table)
        conf = test["confusion"] / np.maximum(test["confusion"].sum(1, keepdims=True), 1)
        big = np.kron(figures.heat(conf), np.ones((40, 40, 1), np.uint8))
        with files.atomic_path(Path(plots) / "confusion.png") as tmp:
            files.save_png(tmp, figures.grid([big], [f"rows true, cols predicted: {', '.join(NAMES)}"], cols=1,
                                             label_height=16))
    if metrics:
        files.write_json(metrics, summary)
    seen_text = f", on what people saw {summary['two_afc_seen']['percent_correct']:.3f}" if seen_table is not None else ""
    click.echo(f"test accuracy {test['accuracy']:.3f}; 2AFC on the stimuli {summary['two_afc']['percent_correct']:.3f}"
               + seen_text)


def load_model(model_dir):
    """``(params, features, classifier, spec)`` of a network saved by `ferjax train`.

    ``features`` takes images in [0, 1] (N, H, W, C) and applies the
    network's input standardisation, so that attribution methods perturb
    images in their natural range.
    """
    import json

    import jax

    from ferjax import model

    model_dir = Path(model_dir)
    try:
        spec = json.loads((model_dir / "model.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(model_dir / "model.json", None, f"cannot read ({err})", "run `ferjax train` first") from None
    num = 2 if spec["mode"] == "one_vs_one" else spec["num_classes"]
    like = jax.eval_shape(model_init(spec), jax.random.key(0))
    try:
        params = files.load_tree(model_dir / "params.npz", like)
    except (OSError, ValueError) as err:
        raise InputError(model_dir / "params.npz", None, str(err), "re-run `ferjax train`") from None
    features, classifier = model.functions(spec["model"], num_classes=num, channels=spec["channels"])

    def standardised(p, x):
        return features(p, model.preprocess(x))

    return params, standardised, classifier, spec


def model_init(spec):
    """``key -> params``: fresh parameters of the network ``spec`` describes (its model.json).

    Uses the model's own initialisers (``ferjax.model.create``); in
    one_vs_one mode the 28 pair networks are stacked, each from its own
    split of ``key``.
    """
    import jax

    from ferjax import model
    from ferjax.train import pairs

    ovo = spec["mode"] == "one_vs_one"

    def one(k):
        return model.create(spec["model"], num_classes=2 if ovo else spec["num_classes"],
                            channels=spec["channels"], size=spec["size"], key=k)[0]

    if not ovo:
        return one
    return lambda key: jax.vmap(one)(jax.random.split(key, len(pairs(spec["num_classes"]))))


def networks(spec, true, foil):
    """Which network explains each stimulus: ``[(k, rows, true_index, foil_index)]``.

    The 8-way network (k = 0) with the class labels as outputs, or in
    one_vs_one mode the binary network k of each (true, foil) pair, whose
    outputs are 0 for the lower class and 1 for the higher.
    """
    from ferjax.train import pair_index

    true, foil = np.asarray(true), np.asarray(foil)
    if spec["mode"] == "one_vs_one":
        net, t_idx, f_idx = pair_index(true, foil), (true > foil).astype(int), (foil > true).astype(int)
    else:
        net, t_idx, f_idx = np.zeros(len(true), int), true, foil
    return [(int(k), np.flatnonzero(net == k), t_idx[net == k], f_idx[net == k]) for k in np.unique(net)]


@click.command("attribute")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax train`.")
@click.option("--stimuli", "stimuli_dir", type=click.Path(path_type=Path), required=True,
              help="Output of `ferjax stimuli`.")
@click.option("--areas", default="0.1", show_default=True,
              help="Comma-separated Extremal Perturbation areas (fractions of the image).")
@click.option("--variant", type=click.Choice(["preserve", "delete", "dual"]), default="preserve", show_default=True)
@click.option("--max-iter", type=click.IntRange(1), default=800, show_default=True)
@click.option("--step", type=click.IntRange(1), default=7, show_default=True)
@click.option("--sigma", type=click.FloatRange(0, min_open=True), default=21.0, show_default=True)
@click.option("--scale-to", type=click.IntRange(1), default=224, show_default=True,
              help="Scale step and sigma by image size / SCALE_TO (TorchRay's defaults suit 224 px).")
@click.option("--jitter/--no-jitter", default=True, show_default=True)
@click.option("--preset", type=click.Choice(["faithful", "fast"]), default="faithful", show_default=True,
              help="faithful: TorchRay's SGD schedule; fast: Nesterov momentum, its learning rate held for a "
                   "quarter of MAX_ITER then decayed to 0, the area weight's growth rescaled to MAX_ITER (a "
                   "deliberate change, for few iterations; benchmarks/attribution_speed.md compares it with "
                   "TorchRay).")
@click.option("--ep-targets", default="true,contrast", show_default=True,
              help="Targets Extremal Perturbation explains: true, contrast or both (it costs max_iter passes each).")
@click.option("--batch", type=click.IntRange(1), default=35, show_default=True,
              help="Stimuli per compiled Extremal Perturbation call.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--plots", type=click.Path(path_type=Path), default=None, help="Folder for the contact sheet.")
@_user_errors
def attribute_cmd(model_dir, stimuli_dir, areas, variant, max_iter, step, sigma, scale_to, jitter, preset,
                  ep_targets, batch, out, plots):
    """Explain the network on every stimulus with CAM, GradCAM and Extremal Perturbation.

    For each stimulus and two targets, the true class (`true`) and the
    contrast true-minus-foil logit (`contrast`), writes OUT/maps.npz with
    `cam_<target>`, `gradcam_<target>` (N, H, W) and `ep_<target>`
    (N, areas, H, W) at the network's input size, the EP rewards and reached
    areas, and OUT/index.csv (row, filename, true, foil). CAM and GradCAM
    follow pytorch-grad-cam's conventions (ReLU, min-max, bilinear upsampling);
    EP is TorchRay's algorithm and defaults, with step and sigma scaled to the
    image size. PLOTS gets attribution_sheet.png: overlays of every method on
    the first stimuli of each class.

    Params (section `attribute`): areas, variant, max_iter, step, sigma,
    scale_to, jitter, preset, ep_targets, batch.
    """
    import jax

    from ferjax import attribution, figures

    params, features, classifier, spec = load_model(model_dir)
    try:
        area_list = tuple(float(a) for a in str(areas).split(","))
    except ValueError:
        raise InputError("--areas", None, f"{areas!r} is not a comma-separated list of numbers") from None
    ep_for = [t.strip() for t in str(ep_targets).split(",") if t.strip()]
    if not set(ep_for) <= {"true", "contrast"}:
        raise InputError("--ep-targets", None, f"{ep_targets!r}: choose from true, contrast")
    trials = pd.read_csv(Path(stimuli_dir) / "trials.csv")
    size, channels = spec["size"], spec["channels"]
    images = _to_model(_stimulus_images(stimuli_dir, trials["filename"], size, channels), size, channels)
    true, foil = trials["true"].to_numpy(), trials["foil"].to_numpy()
    n = len(trials)
    result = {}
    # Each stimulus is explained by the network that answered it: the 8-way one,
    # or in one_vs_one mode the binary network of its (true, foil) pair.
    bar = tqdm(total=n, desc="attribution", unit="img", disable=None, leave=False)
    for k, rows_k, t_k, f_k in networks(spec, true, foil):
        p = jax.tree.map(lambda a: a[k], params) if spec["mode"] == "one_vs_one" else params
        for start in range(0, len(rows_k), batch):
            rows, t_idx, f_idx = rows_k[start:start + batch], t_k[start:start + batch], f_k[start:start + batch]
            x = images[rows]
            targets = {"true": t_idx, "contrast": np.stack([t_idx, f_idx], 1)}
            for name, tgt in targets.items():
                for method, fn in (("cam", attribution.cam), ("gradcam", attribution.gradcam)):
                    result.setdefault(f"{method}_{name}", np.zeros((n, size, size), np.float32))[rows] = \
                        np.asarray(fn(features, classifier, p, x, tgt))
                if name not in ep_for:
                    continue
                ep = attribution.extremal_perturbation(
                    features, classifier, p, x, tgt, areas=area_list, variant=variant, max_iter=max_iter,
                    step=step, sigma=sigma, jitter=jitter, scale_to=scale_to, preset=preset)
                result.setdefault(f"ep_{name}", np.zeros((n, len(area_list), size, size), np.float32))[rows] = \
                    np.asarray(ep["masks"])
                for key in ("reward", "area"):
                    result.setdefault(f"ep_{name}_{key}", np.zeros((n, len(area_list)), np.float32))[rows] = \
                        np.asarray(ep[key])
            bar.update(len(rows))
    bar.close()
    params_used = dict(areas=list(area_list), variant=variant, max_iter=max_iter, step=step, sigma=sigma,
                       scale_to=scale_to, jitter=jitter, preset=preset, ep_targets=ep_for, batch=batch)
    with files.atomic_path(out, directory=True) as tmp:
        files.save_npz(tmp / "maps.npz", areas=np.array(area_list), **result)
        files.write_csv(tmp / "index.csv", trials.assign(row=np.arange(n))[["row", "filename", "true", "foil"]])
        files.write_json(tmp / "provenance.json", stamp(params_used))
    if plots:
        methods = [("cam_true", "CAM"), ("gradcam_true", "GradCAM"), ("cam_contrast", "CAM contrast")]
        methods += [(f"ep_{t}", f"EP {area_list[0]:g} {t}") for t in ep_for]
        tiles, labels = [], []
        for c in range(len(NAMES)):
            row = int(np.flatnonzero(true == c)[0]) if (true == c).any() else None
            if row is None:
                continue
            face = np.round(images[row, ..., 0] * 255).astype(np.uint8) if channels == 1 else \
                np.round(images[row] * 255).astype(np.uint8)
            tiles.append(np.repeat(face[..., None], 3, -1) if face.ndim == 2 else face)
            labels.append(f"{NAMES[c]} vs {NAMES[foil[row]]}")
            for key, title in methods:
                m = result[key][row]
                tiles.append(figures.overlay(face, m[0] if m.ndim == 3 else m))
                labels.append(title)
        big = [np.kron(t, np.ones((2, 2, 1), np.uint8)) for t in tiles]
        with files.atomic_path(Path(plots) / "attribution_sheet.png") as tmp:
            files.save_png(tmp, figures.grid(big, labels, cols=len(methods) + 1))
    click.echo(f"explained {n} stimuli with CAM, GradCAM and EP (areas {', '.join(map(str, area_list))})")
