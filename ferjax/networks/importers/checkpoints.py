"""PyTorch checkpoints as people save them: a ``state_dict`` and the model's class.

Most trained PyTorch models are saved as ``torch.save(model.state_dict(),
path)``, often inside a dict with the epoch and the optimiser. Such a file
holds tensors only, so :func:`read_state_dict` reads it with
``torch.load(weights_only=True)``, which runs no pickled code; the
architecture comes from the model's class, ``"package.module:Class"`` (or any
function returning an ``nn.Module``, ``"torchvision.models:resnet50"``) and
its keyword arguments (:func:`build`; a module in the working directory, the
repository under DVC, is found too).

A module pickled whole (``torch.save(model, path)``) can only be read by
unpickling it, which runs whatever code the file names: :func:`load_module`
does that only when asked to (``allow_pickle``), and says so.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

from ferjax.plumbing.errors import InputError

#: the keys under which training scripts nest their state_dict
WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "module", "network")
PICKLE_RISK = ("unpickling runs code the file names: allow it only for files you trust "
               "(better: save model.state_dict() and give the model's class)")


def build(torch, model: str, kwargs: dict | None, where):
    """``model`` (``"package.module:Class"``) called with ``kwargs``: an ``nn.Module``, or a one-line InputError."""
    module_name, sep, attr = str(model).partition(":")
    if not sep or not attr:
        raise InputError(where, "model", f"{model!r} is not 'package.module:Class'",
                         "e.g. mymodels:ExpressionNet or torchvision.models:resnet18")
    try:
        # as ``python -m`` would, look in the working directory too (a DVC stage runs from the repository)
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise InputError(where, "model", f"cannot import {model} ({err})",
                         "the module must be importable (installed, or on PYTHONPATH)") from None
    try:
        net = obj(**(kwargs or {}))
    except Exception as err:   # noqa: BLE001 - the user's constructor: any error is a bad setting
        raise InputError(where, "model_kwargs", f"{model}(**{kwargs or {}}) failed "
                         f"({type(err).__name__}: {err})".splitlines()[0]) from None
    if not isinstance(net, torch.nn.Module):
        raise InputError(where, "model", f"{model}(...) gave a {type(net).__name__}, not an nn.Module")
    return net


def read_state_dict(torch, path) -> dict:
    """The ``state_dict`` in ``path``, read with ``weights_only=True`` and unwrapped from a checkpoint dict
    (``{"epoch": ..., "model_state_dict": {...}}``) and DataParallel's ``module.`` prefix."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:   # noqa: BLE001 - torch raises several types for a file it will not read
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))   # torch colours its message
        named = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        why = (f"it pickles {named.group(1)}, which torch.load(weights_only=True) refuses" if named
               else text.strip().splitlines()[0] if text.strip() else type(err).__name__)
        raise InputError(path, None, f"not a weights-only checkpoint ({why})",
                         "save model.state_dict(); a module saved whole needs --allow-pickle") from None
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise InputError(path, None, f"a dict without tensors (keys {sorted(map(str, obj))[:8]})",
                             "save model.state_dict()")
        obj = inner
    if not isinstance(obj, dict):
        raise InputError(path, None, f"holds a {type(obj).__name__}, not a state_dict")
    if obj and all(str(k).startswith("module.") for k in obj):   # saved from nn.DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_state_dict(torch, path, model: str, kwargs: dict | None):
    """``model(**kwargs)`` with the weights in ``path``, in eval mode; every key must fit."""
    net = build(torch, model, kwargs, path)
    state = read_state_dict(torch, path)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as err:   # shape mismatches raise even with strict=False
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        raise InputError(path, "model", f"does not fit {model}: " + "; ".join(lines[:2]),
                         "check model and model_kwargs") from None
    if result.missing_keys or result.unexpected_keys:
        raise InputError(path, "model", f"does not fit {model}: missing {result.missing_keys[:4]}, unexpected "
                         f"{result.unexpected_keys[:4]}", "check model and model_kwargs")
    return net.eval()


def load_module(torch, path, allow_pickle: bool):
    """A module saved whole with ``torch.save(module, path)``: unpickled only with ``allow_pickle``."""
    if not allow_pickle:
        raise InputError(path, "model", "no model class given, and reading a module saved whole would unpickle it",
                         "give the model's class (module:Class) for a state_dict, or --allow-pickle: "
                         + PICKLE_RISK)
    try:
        net = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as err:   # noqa: BLE001
        raise InputError(path, None, f"not a saved PyTorch module ({type(err).__name__}: {err})".splitlines()[0],
                         "save the whole module with torch.save(module, path)") from None
    if not isinstance(net, torch.nn.Module):
        raise InputError(path, None, f"holds a {type(net).__name__}, not an nn.Module",
                         "a state_dict needs its model's class (module:Class)")
    return net.eval()
