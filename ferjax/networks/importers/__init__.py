"""Networks trained elsewhere, as the pure functions ferjax explains (:mod:`ferjax.networks.interface`).

Each importer reads a trained model, splits it at a named layer into
``features`` (the input up to that layer, with the network's own input
normalisation) and ``head`` (the rest, up to the logits, before any final
softmax), and returns a :class:`ferjax.networks.interface.Network`. Images come in as
ferjax's: float32 NHWC in [0, 1]; the network's output keeps its own class
order, and ``labels`` maps it onto AffectNet's eight classes.

* :mod:`~ferjax.networks.importers.keras`: Keras 3 on its JAX backend, ``.keras``
  files and legacy HDF5 (``pip install 'ferjax[keras]'``);
* :mod:`~ferjax.networks.importers.torch`: a PyTorch ``nn.Module``, or a ``state_dict``
  checkpoint and the model's class (:mod:`~ferjax.networks.importers.checkpoints`),
  through torchax, cut with ``torch.fx`` where the user says
  (:mod:`~ferjax.networks.importers.fx`) (``pip install 'ferjax[torch]'`` and torch itself);
* :mod:`~ferjax.networks.importers.exported`: ferjax's own format, which any of them
  is saved in: the two functions serialised with ``jax.export`` (no Keras or
  PyTorch needed to load them; lowered for CPU and CUDA), the parameters as ``.npz``.

The libraries of the first two are optional extras, imported only when used.
"""

from __future__ import annotations

import json

import numpy as np

from ferjax.plumbing.errors import InputError

#: Named label maps: the network's output index -> AffectNet class (0 neutral ... 7 contempt; None: no such class).
LABEL_MAPS = {
    "affectnet": [0, 1, 2, 3, 4, 5, 6, 7],
    # FER2013's order: angry, disgust, fear, happy, sad, surprise, neutral (no contempt)
    "fer2013": [6, 5, 4, 1, 2, 3, 0],
}


def nest(flat: dict, sep: str = "/") -> dict:
    """``{"a/b": x}`` -> ``{"a": {"b": x}}``: parameter paths as the nested dicts that ferjax's params are."""
    out = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(sep)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def flatten(tree: dict, sep: str = "/", prefix: str = "") -> dict:
    """The inverse of :func:`nest`."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, sep, name + sep))
        else:
            out[name] = value
    return out


def checked_labels(labels, num_outputs: int, where) -> list:
    """The label map of a network with ``num_outputs`` outputs, or a one-line InputError.

    ``labels`` is a list, a name in :data:`LABEL_MAPS` (``"fer2013"``), or None:
    outputs 0..N-1 are AffectNet's classes 0..N-1 (N <= 8).
    """
    from ferjax.networks.interface import label_index

    if labels is None and num_outputs > 8:
        raise InputError(where, "labels", f"the network has {num_outputs} outputs, more than AffectNet's 8 classes",
                         "say which output is which class: labels=[...], null for the others")
    if isinstance(labels, str):
        labels = parse_labels(labels, where)
    labels = list(range(num_outputs)) if labels is None else list(labels)
    try:
        label_index(labels, num_outputs)
    except ValueError as err:
        raise InputError(where, "labels", str(err), "give the AffectNet class (or null) of each output") from None
    return labels


def parse_size(size, where="--input-size") -> tuple:
    """(H, W) of a network's input from a side (64), a pair ((64, 48)) or text ("64", "64x48", "64,48")."""
    try:
        if isinstance(size, str):
            size = [int(v) for v in size.lower().replace("x", ",").split(",")]
            size = size[0] if len(size) == 1 else size
        hw = (int(size), int(size)) if np.ndim(size) == 0 else tuple(int(v) for v in size)
    except (TypeError, ValueError):
        hw = ()
    if len(hw) != 2 or min(hw) < 1:
        raise InputError(where, None, f"{size!r} is not an input size", "give a side (64) or HxW (64x48)")
    return hw


def parse_labels(text, where="--labels"):
    """A label map given as text: a name in :data:`LABEL_MAPS`, a JSON list, or empty (None)."""
    if text in (None, ""):
        return None
    if text in LABEL_MAPS:
        return LABEL_MAPS[text]
    try:
        labels = json.loads(text)
    except ValueError:
        raise InputError(where, None, f"{text!r} is neither a named label map nor a JSON list",
                         f"use one of {', '.join(LABEL_MAPS)} or e.g. [6, 5, 4, 1, 2, 3, 0]") from None
    if not isinstance(labels, list):
        raise InputError(where, None, "must be a JSON list: the AffectNet class of each output, or null")
    return labels


def load(source, file, layer, labels, mean, std, size, channels, model=None, model_kwargs=None, allow_pickle=False):
    """The network in ``file``, read by the importer for ``source`` (keras, torch or exported); a torch
    ``file`` is a state_dict of ``model`` (``package.module:Class``, with ``model_kwargs``), or with
    ``allow_pickle`` a module saved whole."""
    if source == "exported":
        from ferjax.networks.importers import exported

        return exported.load(file)
    if not layer:
        raise InputError("--layer", None, f"a {source} network needs the layer to explain",
                         "give the name of the layer whose output maps are explained")
    if source == "keras":
        from ferjax.networks.importers import keras

        return keras.load(file, layer, labels=labels, mean=mean, std=std)
    if not size or not channels:
        raise InputError("--input-size", None, "a PyTorch network needs its input size and channels",
                         "give --input-size and --input-channels")
    from ferjax.networks.importers import torch as torch_importer

    return torch_importer.load(file, layer, size=size, channels=channels, labels=labels, mean=mean, std=std,
                               model=model, model_kwargs=model_kwargs, allow_pickle=allow_pickle)
