"""PyTorch models as ferjax networks, through torchax.

``from_module(module, layer)`` traces the module with ``torch.fx``, splits
the graph after the last operation inside the submodule named ``layer``
(``"layer4"`` of a ResNet, or ``"features.8"`` of a Sequential), and turns
each part into a pure JAX function of its ``state_dict`` with torchax's
``extract_jax``, which lowers PyTorch's operators to JAX (its convolutions
become ``lax.conv_general_dilated`` in NCHW/OIHW, which
:func:`ferjax.networks.rewrite.fast_gradients` then gives ferjax's gradient rules).
``load(path, layer)`` does the same for a module saved whole with
``torch.save(module, path)``. The module runs in eval mode, so BatchNorm uses
its running statistics.

Why torchax: of the routes checked with torch 2.13 (torchax, ``torch.export``
with torchax's converter, ONNX with jaxonnxruntime, torch2jax), it is the one
that is maintained (Google, daily releases), covers PyTorch's operator set,
keeps ``state_dict`` names, and matched PyTorch to ~1e-7 on a plain CNN, a
CNN with BatchNorm and a ResNet block. Its last stable release, 0.0.13, fails
to import with torch 2.13 (``aten.prod.dim_Dimname`` no longer exists;
google/torchax#101, fixed in #102); ferjax pins the nightly that has the fix
(``pip install 'ferjax[torch]'``). PyTorch is needed only to import: the
imported network is saved in ferjax's exported format
(:mod:`ferjax.networks.importers.exported`), which loads without it.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from ferjax.networks.importers import checked_labels, flatten, nest
from ferjax.networks.interface import Head, Network
from ferjax.plumbing.errors import InputError


def _modules(path):
    try:
        import torch
        import torch.fx
    except ImportError:
        raise InputError(path, None, "PyTorch is not installed", "pip install torch==2.13.0") from None
    try:
        import torchax
    except ImportError:
        raise InputError(path, None, "torchax is not installed", "pip install 'ferjax[torch]'") from None
    except AttributeError as err:   # torchax 0.0.13 and older with torch 2.13
        raise InputError(path, None, f"this torchax does not work with torch {torch.__version__} ({err})",
                         "pip install 'ferjax[torch]' (pins the torchax nightly with the fix)") from None
    return torch, torchax


def split(module, layer: str, where="module"):
    """``(features, head)`` GraphModules: the module's graph cut after the last operation in ``layer``."""
    torch, _ = _modules(where)
    from torch.fx.passes.split_module import split_module

    try:
        graph = torch.fx.symbolic_trace(module)
    except Exception as err:
        raise InputError(where, None, f"torch.fx cannot trace the module ({type(err).__name__}: {err})"
                         .splitlines()[0], "the module's forward must be traceable by torch.fx") from None
    order = {node: i for i, node in enumerate(graph.graph.nodes)}
    inside = [n for n in graph.graph.nodes if n.op in ("call_module", "get_attr")
              and (n.target == layer or str(n.target).startswith(layer + "."))]
    if not inside:
        names = sorted({str(n.target).split(".")[0] for n in graph.graph.nodes if n.op == "call_module"})
        raise InputError(where, f"layer {layer!r}", "no submodule of that name", "top-level submodules: "
                         + ", ".join(names))
    cut = max(inside, key=order.get)
    parts = split_module(graph, module, lambda n: 0 if order[n] <= order[cut] else 1)
    head_inputs = [n for n in parts.submod_1.graph.nodes if n.op == "placeholder"]
    if len(head_inputs) != 1:
        raise InputError(where, f"layer {layer!r}", "the rest of the network also uses values from before this "
                                                   "layer (a skip connection across the cut)",
                         "choose a layer whose output alone feeds the rest of the network")
    return parts.submod_0, parts.submod_1


def from_module(module, layer: str, *, size: int, channels: int, labels=None, mean=0.0, std=1.0,
                where="module") -> Network:
    """A PyTorch ``nn.Module`` split after ``layer``; inputs (N, channels, size, size) on the PyTorch side.

    Arguments as :func:`ferjax.networks.importers.keras.load`; ``size`` and
    ``channels`` give the input the network expects.
    """
    torch, torchax = _modules(where)
    module = module.eval()
    features_gm, head_gm = split(module, layer, where)
    state = {}
    functions = []
    for part in (features_gm, head_gm):
        weights, fn = torchax.extract_jax(part.eval())
        state.update({k: v for k, v in weights.items()})
        functions.append((sorted(weights), fn))
    # integer buffers (BatchNorm's num_batches_tracked) stay constants: gradients and randomisation skip them
    params = {k: jnp.asarray(v) for k, v in state.items() if jnp.issubdtype(jnp.asarray(v).dtype, jnp.floating)}
    consts = {k: jnp.asarray(v) for k, v in state.items() if k not in params}
    (f_keys, f_fn), (h_keys, h_fn) = functions

    def call(fn, keys, p, x):
        flat = {**consts, **flatten(p, ".")}
        out = fn({k: flat[k] for k in keys}, (x,))
        return out[0] if isinstance(out, (tuple, list)) else out

    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)

    def features(p, x):   # NHWC in [0, 1] -> the network's NCHW input -> maps back to NHWC
        a = call(f_fn, f_keys, p, jnp.transpose((x - mean) / std, (0, 3, 1, 2)))
        if a.ndim != 4:
            raise ValueError(f"layer {layer!r} gives {a.ndim}-D output; ferjax explains 4-D maps (N, C, h, w)")
        return jnp.transpose(a, (0, 2, 3, 1))

    def head(p, a):
        return call(h_fn, h_keys, p, jnp.transpose(a, (0, 3, 1, 2)))

    try:
        with torch.no_grad():
            num_outputs = int(module(torch.zeros(1, channels, size, size)).shape[-1])
    except RuntimeError as err:
        raise InputError(where, "input", f"the network does not take {channels}x{size}x{size} images "
                         f"({str(err).splitlines()[0]})", "give the input size and channels it was trained on") from None
    spec = {"source": "torch", "layer": layer, "size": int(size), "channels": int(channels),
            "num_outputs": num_outputs, "labels": checked_labels(labels, num_outputs, where),
            "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist(),
            "head_params": sorted({k.split(".")[0] for k in h_keys if k in params}),
            "logits": "the model's output"}
    return Network(features, Head(head), nest(params, "."), spec)


def load(path, layer: str, *, size: int, channels: int, labels=None, mean=0.0, std=1.0) -> Network:
    """A module saved whole with ``torch.save(module, path)`` (its class must be importable)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "file not found")
    torch, _ = _modules(path)
    try:
        module = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as err:
        raise InputError(path, None, f"not a saved PyTorch module ({type(err).__name__}: {err})".splitlines()[0],
                         "save the whole module with torch.save(module, path)") from None
    if not isinstance(module, torch.nn.Module):
        raise InputError(path, None, f"holds a {type(module).__name__}, not an nn.Module",
                         "a state_dict needs its architecture: save the module itself")
    spec_path = str(path)
    net = from_module(module, layer, size=size, channels=channels, labels=labels, mean=mean, std=std,
                      where=spec_path)
    return Network(net.features, net.head, net.params, {**net.spec, "file": spec_path})
