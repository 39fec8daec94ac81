"""Train and evaluate the networks of :mod:`ferjax.networks.cnn` (no file I/O but checkpoints).

Modes: ``multiclass`` (softmax over all classes; the 2AFC answer is the
alternative with the higher logit) and ``one_vs_one`` (a binary network per
unordered class pair trained only on its two classes; all pairs in one
compiled program, stacked params, ``jax.vmap`` over pairs). Batch and
augmentation come from ``fold_in(key(seed), step)`` inside the jitted step, so
a run depends on the seed alone and a resumed run ends exactly where an
uninterrupted one does. The batch is sharded over a 1-D ``data`` mesh of all
devices with params replicated.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from orbax.checkpoint import checkpoint_managers as cm
from tqdm import tqdm

from ferjax.networks import cnn as models
from ferjax.plumbing import devices, distributed
from ferjax.plumbing.errors import InputError

MODES = ("multiclass", "one_vs_one")


def pairs(num_classes=8):
    """Unordered class pairs ``(a, b)``, ``a < b``, in :func:`pair_index` order."""
    return list(itertools.combinations(range(num_classes), 2))


def pair_index(a, b, num_classes=8):
    """Index of the unordered pair {a, b} among :func:`pairs` (works on arrays)."""
    a, b = np.minimum(a, b), np.maximum(a, b)
    return a * (2 * num_classes - a - 1) // 2 + (b - a - 1)


def augment_batch(key, x):
    """Random shift (edge pad + crop), horizontal flip, brightness and contrast, per image."""
    n, h, w, _ = x.shape
    pad = max(1, h // 16)
    k_crop, k_flip, k_bright, k_contrast = jax.random.split(key, 4)
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(k_crop, (n, 2), 0, 2 * pad + 1)
    x = jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, im.shape[-1])))(padded, offsets)
    x = jnp.where(jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1)), x[:, :, ::-1], x)
    mean = x.mean((1, 2, 3), keepdims=True)
    contrast = jax.random.uniform(k_contrast, (n, 1, 1, 1), minval=0.8, maxval=1.2)
    bright = jax.random.uniform(k_bright, (n, 1, 1, 1), minval=-0.4, maxval=0.4)
    return (x - mean) * contrast + mean + bright


def _check(images, labels, num_classes, what):
    if not isinstance(images, jax.Array):
        images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int32)
    # a global array spanning processes holds N rows padded to fill the devices
    rows = len(labels) <= images.shape[0] < len(labels) + len(images.sharding.device_set) \
        if isinstance(images, jax.Array) else len(images) == len(labels)
    if images.ndim != 4 or not rows or len(labels) == 0:
        raise InputError(what, "images", f"need (N, H, W, C) images and N labels, got {images.shape}, {labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise InputError(what, "labels", f"labels must lie in 0..{num_classes - 1}")
    return images, labels


def _sampling(labels, num_classes, mode, balanced):
    """Sampling probabilities over the items: (N,) or (pairs, N) for one_vs_one."""
    freq = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weight = (1.0 / np.maximum(freq, 1))[labels] if balanced else np.ones(len(labels))
    if mode == "multiclass":
        return (weight / weight.sum()).astype(np.float32)
    if (freq == 0).any():
        raise InputError("labels", f"class {int(np.argmin(freq))}", "one_vs_one needs training images of every class")
    rows = [weight * ((labels == a) | (labels == b)) for a, b in pairs(num_classes)]
    return np.asarray([w / w.sum() for w in rows], np.float32)


def train(images, labels, val_images=None, val_labels=None, *, model="fine", mode="multiclass",
          num_classes=8, steps=1000, batch_size=64, lr=1e-3, warmup=100, weight_decay=1e-4,
          label_smoothing=0.1, balanced=True, augment=True, seed=0, dtype=jnp.float32,
          checkpoint_dir=None, save_every=100, mesh=None, progress=True, callback=None, pair_map="vmap"):
    """Train network ``model`` and return ``(params, history)``.

    ``batch_size`` images per step (per pair in ``one_vs_one``) must divide by
    the mesh's device count (without a mesh and with the automatic one CPU
    device per core, the mesh takes the most devices that divide it:
    :func:`ferjax.plumbing.devices.data_mesh`). With ``checkpoint_dir``, saves (params, optimizer
    state, step) every ``save_every`` steps and at the end, keeps the latest
    and the best by validation accuracy, and resumes from the latest.
    ``callback(step, metrics)`` runs after every step (raising stops the run).
    ``pair_map="map"`` runs the pairs one after another (``lax.map``) inside
    the step instead of ``vmap``: the same result, much faster on CPU, where
    vmapped convolutions become slow grouped convolutions.
    ``history`` holds per-step ``loss``/``accuracy`` and ``val_step``/``val_accuracy``.

    ``images`` is a NumPy array, or a global ``jax.Array`` split by rows over
    the mesh (padded to fill it; :func:`ferjax.plumbing.distributed.global_rows`), with
    which each process of a multi-host run holds only its share of the
    training images. The data stay where they are: every step draws the
    batch's row indices from (seed, step) alone, gathers those rows from the
    devices that hold them, and the gradient is summed over all devices, so
    a run depends on the device count but not on how the devices are spread
    over processes.
    """
    if mode not in MODES or pair_map not in ("vmap", "map"):
        raise InputError("--mode", None, f"unknown mode {mode!r} or pair_map {pair_map!r}")
    images, labels = _check(images, labels, num_classes, "train")
    mesh = devices.data_mesh(mesh, divides=max(batch_size, 0))
    if batch_size <= 0 or batch_size % mesh.size:
        raise InputError("--batch-size", None, f"{batch_size} does not divide by the {mesh.size} devices")
    ovo, n_pairs, key = mode == "one_vs_one", len(pairs(num_classes)), jax.random.key(seed)
    spec = dict(num_classes=2 if ovo else num_classes, channels=int(images.shape[-1]), dtype=dtype)
    features, classifier = models.functions(model, **spec)
    init = lambda k: models.create(model, size=images.shape[1], key=k, **spec)[0]  # noqa: E731
    params = jax.jit(jax.vmap(init))(jax.random.split(key, n_pairs)) if ovo else init(key)
    decay_mask = jax.tree.map(lambda p: p.ndim > (2 if ovo else 1), params)
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(warmup, steps - 1), max(steps, 1))
    tx = optax.adamw(schedule, weight_decay=weight_decay, mask=decay_mask)
    repl, batch_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P(None, "data") if ovo else P("data"))
    if not isinstance(images, jax.Array):
        images = distributed.global_rows(mesh, images[distributed.rows(len(images), mesh)], len(images))
    data_x = images
    params, opt_state, data_y, probs = jax.device_put(
        (params, tx.init(params), labels, _sampling(labels, num_classes, mode, balanced)), repl)
    high = jnp.asarray(pairs(num_classes) if ovo else [[0, 0]], jnp.int32)[:, 1:2]
    use_augment = augment

    def loss_fn(p, x, y):
        z = models.logits(features, classifier, p, x)
        onehot = optax.smooth_labels(jax.nn.one_hot(y, z.shape[-1]), label_smoothing)
        return optax.softmax_cross_entropy(z, onehot).mean(), (z.argmax(-1) == y).mean()

    @jax.jit
    def step_fn(params, opt_state, step, data_x, data_y, probs):
        k_idx, k_aug = jax.random.split(jax.random.fold_in(key, step))
        n = data_y.shape[0]  # the data order and augmentation depend on (seed, step) only
        if ovo:
            idx = jax.vmap(lambda k, p: jax.random.choice(k, n, (batch_size,), p=p))(
                jax.random.split(k_idx, n_pairs), probs)
            y = (data_y[idx] == high).astype(jnp.int32)
        else:
            idx = jax.random.choice(k_idx, n, (batch_size,), p=probs)
            y = data_y[idx]
        x = models.preprocess(data_x[idx])
        if use_augment:
            x = augment_batch(k_aug, x.reshape(-1, *x.shape[-3:])).reshape(x.shape)
        x = jax.lax.with_sharding_constraint(x, batch_sharding)
        def total(p):
            if not ovo:
                loss, acc = loss_fn(p, x, y)
                return loss, (loss, acc)
            each = jax.vmap(loss_fn) if pair_map == "vmap" else (lambda *a: jax.lax.map(lambda b: loss_fn(*b), a))
            loss, acc = each(p, x, y)
            return loss.sum(), (loss.mean(), acc.mean())
        grads, (loss, acc) = jax.grad(total, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = jax.lax.with_sharding_constraint(optax.apply_updates(params, updates), repl)
        return params, opt_state, loss, acc

    manager, start = None, 0
    if checkpoint_dir is not None:
        manager = _manager(checkpoint_dir)
        latest = manager.latest_step()
        if latest is not None:
            if latest > steps:
                raise InputError(checkpoint_dir, f"step {latest}", f"checkpoint is past the {steps} steps asked for")
            like = {"params": params, "opt_state": opt_state, "step": np.asarray(0, np.int64)}
            restored = manager.restore(latest, args=ocp.args.StandardRestore(
                jax.tree.map(ocp.utils.to_shape_dtype_struct, like)))
            params, opt_state, start = restored["params"], restored["opt_state"], latest

    history = {"step": [], "loss": [], "accuracy": [], "val_step": [], "val_accuracy": []}
    per_step = batch_size * (n_pairs if ovo else 1)
    # disable=None: a bar on a terminal, none in logs (e.g. under `dvc repro`).
    bar = tqdm(total=steps, initial=start, desc=f"train {model}", unit="step",
               disable=None if progress else True, leave=False)
    pending, tick, done = [], time.perf_counter(), start
    try:
        for step in range(start, steps):
            params, opt_state, loss, acc = step_fn(params, opt_state, step, data_x, data_y, probs)
            pending.append((step + 1, loss, acc))
            if callback is not None:
                callback(step + 1, {"loss": loss, "accuracy": acc})
            last = step + 1 == steps
            save = manager is not None and ((step + 1) % save_every == 0 or last)
            if save or last or len(pending) >= 10:  # fetch metrics in groups, not every step
                for s, lo, a in jax.device_get(pending):
                    [history[k].append(v) for k, v in (("step", s), ("loss", float(lo)), ("accuracy", float(a)))]
                now, images_done = time.perf_counter(), per_step * (s - done)
                bar.set_postfix(loss=f"{lo:.3f}", acc=f"{a:.3f}", img_s=f"{images_done / max(now - tick, 1e-9):.0f}")
                bar.update(s - done)
                pending, tick, done = [], now, s
            if (save or last) and (val := None if val_images is None else evaluate(
                    params, val_images, val_labels, model=model, mode=mode, num_classes=num_classes,
                    dtype=dtype)["accuracy"]) is not None:
                history["val_step"].append(step + 1), history["val_accuracy"].append(val)
            if save:
                state = {"params": params, "opt_state": opt_state, "step": np.asarray(step + 1, np.int64)}
                manager.save(step + 1, args=ocp.args.StandardSave(state),
                             metrics=None if val is None else {"val_accuracy": float(val)})
        if start == steps and val_images is not None:
            # resumed at the last step, nothing left to run: still report its validation score
            history["val_step"].append(steps), history["val_accuracy"].append(evaluate(
                params, val_images, val_labels, model=model, mode=mode, num_classes=num_classes,
                dtype=dtype)["accuracy"])
    finally:
        bar.close()
        if manager is not None:
            manager.close()  # waits for pending saves
    return jax.device_get(params), {k: np.asarray(v) for k, v in history.items()}


def _manager(directory):
    keep = cm.AnyPreservationPolicy([cm.LatestN(1), cm.BestN(get_metric_fn=lambda m: m["val_accuracy"], n=1)])
    options = ocp.CheckpointManagerOptions(preservation_policy=keep, best_fn=lambda m: m["val_accuracy"],
                                           best_mode="max", create=True)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def best_params(checkpoint_dir):
    """Params and step of the checkpoint with the best validation accuracy in ``checkpoint_dir``."""
    with _manager(checkpoint_dir) as manager:
        if (step := manager.best_step()) is None:
            raise InputError(checkpoint_dir, None, "no checkpoint found", "train with checkpoint_dir first")
        return manager.restore(step, args=ocp.args.StandardRestore())["params"], step


def predict(params, images, *, model, mode="multiclass", num_classes=8, dtype=jnp.float32):
    """Predicted class per image; one_vs_one votes over pairs (ties: summed pair probabilities)."""
    z = models.apply(params, images, model, num_classes=2 if mode == "one_vs_one" else num_classes,
                     stacked=mode == "one_vs_one", dtype=dtype)
    if mode == "multiclass":
        return z.argmax(-1)
    prob_b = jax.nn.sigmoid(z[..., 1] - z[..., 0])  # (pairs, N)
    score = np.zeros((z.shape[1], num_classes))
    for p, (a, b) in enumerate(pairs(num_classes)):
        score[:, a] += (prob_b[p] < 0.5) + (1 - prob_b[p]) / num_classes
        score[:, b] += (prob_b[p] >= 0.5) + prob_b[p] / num_classes
    return score.argmax(-1)


def evaluate(params, images, labels, *, model, mode="multiclass", num_classes=8, dtype=jnp.float32):
    """Accuracy, per-class accuracy (recall), macro-F1 and confusion matrix (rows: true)."""
    images, labels = _check(images, labels, num_classes, "evaluate")
    pred = predict(params, images, model=model, mode=mode, num_classes=num_classes, dtype=dtype)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    tp, support, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    recall = tp / np.maximum(support, 1)
    f1 = 2 * tp / np.maximum(support + predicted, 1)
    return {"accuracy": float(tp.sum() / confusion.sum()), "per_class": np.where(support > 0, recall, np.nan),
            "macro_f1": float(f1[support > 0].mean()), "confusion": confusion}


def two_afc(params, images, true, foil, *, model, mode="multiclass", num_classes=8, dtype=jnp.float32):
    """Whether the network picks ``true`` over ``foil`` for each trial (bool array)."""
    true, foil = np.asarray(true, np.int64), np.asarray(foil, np.int64)
    if np.any(true == foil):
        raise InputError("trials", "column 'foil'", "the foil must differ from the true label")
    _check(images, true, num_classes, "trials"), _check(images, foil, num_classes, "trials")
    z = models.apply(params, images, model, num_classes=2 if mode == "one_vs_one" else num_classes,
                     stacked=mode == "one_vs_one", dtype=dtype)
    rows = np.arange(len(true))
    if mode == "multiclass":
        return z[rows, true] > z[rows, foil]
    pair = pair_index(true, foil, num_classes)
    zp = z[pair, rows]  # (N, 2): logits of the lower, then the higher class of the pair
    return (zp[:, 1] > zp[:, 0]) == (true > foil)
