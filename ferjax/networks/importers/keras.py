"""Keras 3 models, on Keras's JAX backend, as ferjax networks.

``load(path, layer)`` reads a ``.keras`` file or a legacy HDF5 model
(``.h5``/``.hdf5``; fer's FER2013 network is one) with ``compile=False``,
splits the functional graph at ``layer`` into two Keras sub-models, and
wraps each in ``stateless_call`` so that it becomes a pure JAX function of an
explicit parameter dict (every variable, trainable or not, keyed by its
path). BatchNormalization runs in inference mode on its moving statistics.
If the model ends in a softmax or log-softmax (an ``Activation`` or
``Softmax`` layer, or a last layer with ``activation="softmax"``) the head
stops before it, and the spec's ``logits`` says so: the explanations are of
the logits, as CAM, GradCAM and Extremal Perturbation define them. Inputs of
any (H, W) work.

Keras must run on JAX: set ``KERAS_BACKEND=jax`` before anything imports
Keras (ferjax sets it when it imports Keras first). ``pip install
'ferjax[keras]'`` installs Keras 3 and h5py.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from ferjax.networks.importers import checked_labels, flatten, nest
from ferjax.networks.interface import Head, Network
from ferjax.plumbing.errors import InputError


def _keras(path):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError:
        raise InputError(path, None, "Keras is not installed", "pip install 'ferjax[keras]'") from None
    if keras.backend.backend() != "jax":
        raise InputError(path, None, f"Keras runs on its {keras.backend.backend()} backend, not JAX",
                         "set KERAS_BACKEND=jax before Keras is first imported")
    return keras


def _softmax(layer, keras):
    """"softmax" or "log_softmax" if the layer ends in one (an activation, or a Softmax layer), else None."""
    if type(layer).__name__ == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    for kind in ("softmax", "log_softmax"):
        if act is getattr(keras.activations, kind, None) or getattr(act, "__name__", "") == kind:
            return kind
    return None


def _pure(model, keys):
    """``f(params, x)``: the sub-model as a pure function of the parameter dict (keys: its variables' paths)."""
    trainable = [v.path for v in model.trainable_variables]
    other = [v.path for v in model.non_trainable_variables]

    def f(params, x):
        out, _ = model.stateless_call([params[k] for k in trainable], [params[k] for k in other], x,
                                      training=False)
        return out

    return f


def load(path, layer: str, *, labels=None, mean=0.0, std=1.0) -> Network:
    """A Keras model split after ``layer`` (its output is the explained maps).

    Args:
      path: a ``.keras``, ``.h5`` or ``.hdf5`` model file.
      layer: the name of the layer whose output is explained; it must be a
        4-D (N, h, w, K) feature map that the rest of the model depends on
        alone.
      labels: the network's output index -> AffectNet class (see
        :data:`ferjax.networks.importers.LABEL_MAPS`); default: outputs 0..7 are
        AffectNet's classes.
      mean, std: the network's input normalisation, ``(x - mean) / std`` on
        images in [0, 1] (fer's FER2013 network: 0.5 and 0.5).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "file not found")
    keras = _keras(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a file that is not a model
        raise InputError(path, None, f"not a Keras model ({type(err).__name__}: {err})".splitlines()[0],
                         "give a .keras, .h5 or .hdf5 model file") from None
    net = from_model(model, layer, labels=labels, mean=mean, std=std, where=path)
    return Network(net.features, net.head, net.params, {**net.spec, "file": str(path)})


def from_model(model, layer: str, *, labels=None, mean=0.0, std=1.0, where="model") -> Network:
    """A Keras model already in memory, split after ``layer`` (arguments as :func:`load`)."""
    path = where
    keras = _keras(where)
    names = [lay.name for lay in model.layers]
    if layer not in names:
        conv = [n for n, lay in zip(names, model.layers) if len(getattr(lay, "output", None).shape or ()) == 4]
        raise InputError(path, f"layer {layer!r}", "no layer of that name",
                         "layers with 4-D maps: " + ", ".join(conv[-6:]))
    inputs, split = model.inputs[0], model.get_layer(layer).output
    shape = tuple(inputs.shape)
    if len(shape) != 4 or len(tuple(split.shape)) != 4:
        raise InputError(path, f"layer {layer!r}", f"needs 4-D images and maps (N, H, W, C); got input {shape} "
                                                   f"and maps {tuple(split.shape)}")
    last, output = model.layers[-1], model.outputs[0]
    dropped = _softmax(last, keras)
    if dropped:
        if type(last).__name__ in ("Activation", "Softmax"):
            output = last.input
        else:   # a layer with a built-in softmax: its logits, from the same weights
            last.activation = keras.activations.linear
            output = last(last.input)
    try:
        features_model = keras.Model(inputs, split)
        head_model = keras.Model(split, output)
    except Exception as err:
        raise InputError(path, f"layer {layer!r}", f"the model cannot be split there ({err})".splitlines()[0],
                         "choose a layer whose output alone feeds the rest of the network") from None
    params = {v.path: jnp.array(np.asarray(v.value), copy=True) for v in model.variables}
    features_fn, head_fn = _pure(features_model, params), _pure(head_model, params)
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    num_outputs = int(output.shape[-1])
    size = int(shape[1]) if shape[1] == shape[2] else [int(shape[1]), int(shape[2])]
    spec = {"source": "keras", "layer": layer, "size": size, "channels": int(shape[3]),
            "num_outputs": num_outputs, "labels": checked_labels(labels, num_outputs, where),
            "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist(),
            "head_params": sorted({v.path.split("/")[0] for v in head_model.variables}),
            "logits": f"before the final {dropped} (left out)" if dropped else "the model's output"}
    return Network(lambda p, x: features_fn(flatten(p), (x - mean) / std),
                   Head(lambda p, a: head_fn(flatten(p), a)), nest(params), spec)
