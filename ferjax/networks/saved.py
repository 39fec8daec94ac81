"""Networks saved on disk: ferjax's own (`ferjax train`) and the `network` stage's folder.

A network is returned as ``(params, features, head, spec)``: the parameters,
the pure function from images in [0, 1] (N, H, W, C) to the maps of the
layer to explain (with the network's own input normalisation), the head
from those maps to the logits (:mod:`ferjax.networks.interface`), and the
spec (its ``model.json``: size, channels, classes, and for imported
networks their source and label map).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from ferjax.networks import cnn
from ferjax.networks.train import pairs
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError


def load_model(model_dir):
    """``(params, features, classifier, spec)`` of a network saved by `ferjax train`.

    ``features`` takes images in [0, 1] (N, H, W, C) and applies the
    network's input standardisation, so that attribution methods perturb
    images in their natural range.
    """
    model_dir = Path(model_dir)
    try:
        spec = json.loads((model_dir / "model.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(model_dir / "model.json", None, f"cannot read ({err})", "run `ferjax train` first") from None
    num = 2 if spec["mode"] == "one_vs_one" else spec["num_classes"]
    like = jax.eval_shape(_own_init(spec), jax.random.key(0))
    try:
        params = files.load_tree(model_dir / "params.npz", like)
    except (OSError, ValueError) as err:
        raise InputError(model_dir / "params.npz", None, str(err), "re-run `ferjax train`") from None
    features, classifier = cnn.functions(spec["model"], num_classes=num, channels=spec["channels"])

    def standardised(p, x):
        return features(p, cnn.preprocess(x))

    return params, standardised, classifier, spec


def load_network(folder):
    """``(params, features, head, spec)`` of the `network` stage's output (or a `train` model folder).

    ``features`` takes images in [0, 1] (N, H, W, C) and applies the
    network's own input normalisation; ``head`` is a classifier of the pooled
    maps (ferjax's own networks) or a :class:`ferjax.networks.interface.Head`.
    """
    folder = Path(folder)
    try:
        spec = json.loads((folder / "model.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(folder / "model.json", None, f"cannot read ({err})", "run `ferjax network` first") \
            from None
    if spec.get("source") == "exported":
        from ferjax.networks.importers import exported

        net = exported.load(folder)
        return net.params, net.features, net.head, net.spec
    return load_model(folder)


def init_function(spec, params=None):
    """``key -> params``: fresh parameters for model randomisation.

    ferjax's own networks use their own initialisers
    (:func:`ferjax.networks.cnn.create`). An imported network's
    floating-point arrays are redrawn from a zero-mean Gaussian with each
    array's own standard deviation (its own initialiser is not known); its
    normalisation statistics (BatchNorm's moving mean and variance) are kept.
    """
    if spec.get("source") != "exported":
        return _own_init(spec)
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


def _own_init(spec):
    """``key -> params``: fresh parameters of the network ``spec`` describes (its model.json).

    Uses the model's own initialisers (``ferjax.networks.cnn.create``); in
    one_vs_one mode the 28 pair networks are stacked, each from its own
    split of ``key``.
    """
    ovo = spec["mode"] == "one_vs_one"

    def one(k):
        return cnn.create(spec["model"], num_classes=2 if ovo else spec["num_classes"],
                            channels=spec["channels"], size=spec["size"], key=k)[0]

    if not ovo:
        return one
    return lambda key: jax.vmap(one)(jax.random.split(key, len(pairs(spec["num_classes"]))))
