"""The `train` stage: train the expression network, and load a trained one (:func:`load_model`)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from ferjax.cli.launch import multihost
from ferjax.faces.datasets import load_prepared
from ferjax.faces.labels import NAMES
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError
from ferjax.plumbing.errors import cli_errors as _user_errors
from ferjax.plumbing.provenance import source_digest, stamp


@click.command("train")
@click.option("--dataset", type=click.Path(path_type=Path), required=True, help="Output of `ferjax prepare`.")
@click.option("--splits", type=click.Path(path_type=Path), required=True, help="Output of `ferjax split`.")
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
@multihost
@_user_errors
def train_cmd(dataset, splits, model_name, mode, steps, batch_size, lr, warmup, weight_decay,
              label_smoothing, balanced, augment, dtype, save_every, seed, out, checkpoints, metrics, plots):
    """Train the expression network.

    Trains on the images with role `train` (validation: `val`) and writes
    OUT/params.npz and OUT/model.json (the network: `ferjax.networks.cnn` name,
    input size and channels, mode). METRICS gets test accuracy, per-class
    accuracy, macro-F1 and the confusion matrix; PLOTS gets confusion.png.
    `ferjax network` then scores the network (this one or an imported one)
    on the people's 2AFC trials.

    Params (section `train`): model, mode, steps, batch_size, lr, warmup,
    weight_decay, label_smoothing, balanced, augment, dtype, save_every, seed.

    The result depends on the seed and the total device count, not on how
    the devices are spread over processes (the gradient sums over all of
    them). Each process reads only its share of the training images; the
    validation and test images, a fifth of the data, are read by each.
    """
    import hashlib
    import json

    import jax
    import jax.numpy as jnp

    from ferjax.networks import train
    from ferjax.plumbing import devices, distributed
    from ferjax.report import figures

    npz = Path(dataset) / "dataset.npz" if Path(dataset).is_dir() else Path(dataset)
    ds = load_prepared(dataset, keys=("labels",))
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
        digest.update(np.flatnonzero(pick["train"]).tobytes())
        with open(npz, "rb") as f:
            hashlib.file_digest(f, lambda: digest)
        digest.update(source_digest().encode())
        ckpt = Path(checkpoints) / digest.hexdigest()[:16]
    # The training images as one array split by rows over every process's devices.
    mesh, train_rows = devices.data_mesh(None, divides=batch_size), np.flatnonzero(pick["train"])
    images = distributed.global_rows(
        mesh, files.npz_rows(npz, "images", train_rows[distributed.rows(len(train_rows), mesh)]), len(train_rows))
    held = {role: files.npz_rows(npz, "images", np.flatnonzero(pick[role])) for role in ("val", "test")}
    params, history = train.train(
        images, ds["labels"][pick["train"]], held["val"] if has_val else None,
        ds["labels"][pick["val"]] if has_val else None, model=model_name, mode=mode, steps=steps, batch_size=batch_size, lr=lr,
        warmup=warmup, weight_decay=weight_decay, label_smoothing=label_smoothing, balanced=balanced,
        augment=augment, seed=seed, dtype=jdtype, checkpoint_dir=ckpt, save_every=save_every, mesh=mesh)
    spec = dict(model=model_name, mode=mode, num_classes=len(NAMES), dtype=jdtype)
    test = train.evaluate(params, held["test"], ds["labels"][pick["test"]], **spec)

    size, channels = int(images.shape[1]), int(images.shape[-1])
    summary = {"test_accuracy": test["accuracy"], "macro_f1": test["macro_f1"],
               "val_accuracy": float(history["val_accuracy"][-1]) if len(history["val_accuracy"]) else None,
               "per_class": {NAMES[c]: float(v) for c, v in enumerate(test["per_class"])},
               "confusion": test["confusion"].tolist(), "steps": steps, "mode": mode, "model": model_name}
    if not distributed.is_writer():
        return
    with files.atomic_path(out, directory=True) as tmp:
        files.save_tree(tmp / "params.npz", params)
        files.write_json(tmp / "model.json", {"model": model_name, "mode": mode, "size": size, "channels": channels,
                                              "num_classes": len(NAMES), "dtype": dtype})
        files.write_json(tmp / "provenance.json", stamp(config, devices=mesh.size, processes=jax.process_count()))
    if plots:
        conf = test["confusion"] / np.maximum(test["confusion"].sum(1, keepdims=True), 1)
        big = np.kron(figures.heat(conf), np.ones((40, 40, 1), np.uint8))
        with files.atomic_path(Path(plots) / "confusion.png") as tmp:
            files.save_png(tmp, figures.grid([big], [f"rows true, cols predicted: {', '.join(NAMES)}"], cols=1,
                                             label_height=16))
    if metrics:
        files.write_json(metrics, summary)
    click.echo(f"test accuracy {test['accuracy']:.3f} (macro-F1 {test['macro_f1']:.3f})")
