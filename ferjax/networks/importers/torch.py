"""PyTorch models as ferjax networks, through torchax.

``from_module(module, layer, size=..., channels=...)`` cuts the module's
``torch.fx`` graph after the last operation inside the submodule ``layer``
(:mod:`ferjax.networks.importers.fx`: the module stack, so a block ending in
``F.relu`` or a residual ``+`` is cut after it; pytorch-grad-cam's notation
``layer4[-1]`` works) and turns each part into a pure JAX function of its
``state_dict`` with torchax's ``extract_jax``, which lowers PyTorch's
operators to JAX (its convolutions become ``lax.conv_general_dilated`` in
NCHW/OIHW, which :func:`ferjax.networks.rewrite.fast_gradients` then gives
ferjax's gradient rules). The module runs in eval mode, so BatchNorm uses its
running statistics. Images come in as NHWC in [0, 1], of any (H, W), and
maps go out as NHWC:

* a convolutional layer's (N, C, h, w) output becomes the maps (N, h, w, C);
* a token layer's (N, T, C) output (a vision transformer's ``norm1``)
  becomes a grid (N, h, w, C): the patch grid of the network's patch
  embedding (``grid`` overrides it), with the class and other prefix tokens
  carried to the head (:class:`ferjax.networks.interface.Tokens`);
* values that the head reads besides the layer's output (a residual stream)
  are carried too: ``features`` then returns a
  :class:`ferjax.networks.interface.Cut`.

A final softmax or log-softmax is left out, and the spec says so.
``load(path, layer, model="package.module:Class")`` reads a ``state_dict``
checkpoint (:mod:`ferjax.networks.importers.checkpoints`); a module pickled
whole needs ``allow_pickle=True``.

Why torchax: of the routes checked with torch 2.13 (torchax, ``torch.export``
with torchax's converter, ONNX with jaxonnxruntime, torch2jax), it is the one
that is maintained, covers PyTorch's operator set, keeps ``state_dict``
names, and matched PyTorch to ~1e-7 on the torchvision and timm zoo. Its last
stable release, 0.0.13, fails to import with torch 2.13 (google/torchax#101,
fixed in #102); ferjax pins the nightly that has the fix. PyTorch is needed
only to import: the network is saved in ferjax's exported format
(:mod:`ferjax.networks.importers.exported`), which loads without it.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from ferjax.networks.importers import checked_labels, checkpoints, flatten, fx, nest, parse_size
from ferjax.networks.interface import Cut, Head, Network, Tokens, maps_of
from ferjax.plumbing.errors import InputError


def _modules(where):
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError:
        raise InputError(where, None, "PyTorch is not installed", "pip install torch==2.13.0") from None
    try:
        import torchax
    except ImportError:
        raise InputError(where, None, "torchax is not installed", "pip install 'ferjax[torch]'") from None
    except AttributeError as err:   # torchax 0.0.13 and older with torch 2.13
        raise InputError(where, None, f"this torchax does not work with torch {torch.__version__} ({err})",
                         "pip install 'ferjax[torch]' (pins the torchax nightly with the fix)") from None
    return torch, torchax


def _split(torch, module, layer, where):
    try:
        name = fx.resolve_layer(module, layer)
        return (name, *fx.split(module, name))
    except KeyError as err:
        tops = sorted({n.split(".")[0] for n, _ in module.named_modules() if n})
        raise InputError(where, f"layer {layer!r}", str(err).strip("'\""), "top-level submodules: "
                         + ", ".join(tops[:12])) from None
    except ValueError as err:
        raise InputError(where, f"layer {layer!r}", str(err), "choose another layer") from None
    except Exception as err:   # noqa: BLE001 - torch.fx's tracing errors
        raise InputError(where, None, f"torch.fx cannot trace the module ({type(err).__name__}: {err})"
                         .splitlines()[0], "its forward must be traceable by torch.fx") from None


def from_module(module, layer: str, *, size, channels: int, labels=None, mean=0.0, std=1.0, grid=None,
                where="module") -> Network:
    """A PyTorch ``nn.Module`` cut after ``layer``; its input is (N, channels, H, W) on the PyTorch side.

    ``size`` is the input's side or (H, W); ``grid`` the (h, w) of a token
    layer's patch grid, if not the patch embedding's; ``labels``, ``mean``
    and ``std`` as :func:`ferjax.networks.importers.keras.load`.
    """
    torch, torchax = _modules(where)
    module = module.eval()
    hw = parse_size(size)
    name, features_gm, head_gm, carried, dropped = _split(torch, module, layer, where)
    try:
        with torch.no_grad():
            probe = features_gm(torch.zeros(1, channels, *hw))
            num_outputs = int(head_gm(*probe).shape[-1])
    except RuntimeError as err:
        raise InputError(where, "input", f"the network does not take {channels}x{hw[0]}x{hw[1]} images "
                         f"({str(err).splitlines()[0]})", "give the input size and channels it was trained on") from None
    if not all(isinstance(v, torch.Tensor) for v in probe):
        raise InputError(where, f"layer {layer!r}", "a value that is not a tensor crosses the cut there",
                         "choose another layer")
    shape = tuple(probe[0].shape)
    tokens = None
    if len(shape) == 3:
        tokens = Tokens(grid=tuple(grid) if grid else fx.patch_grid(module, hw))
        try:
            tokens = Tokens(*tokens.layout(shape[1], hw))
        except ValueError as err:
            raise InputError(where, f"layer {layer!r}", str(err), "give grid=(h, w)") from None
    elif len(shape) != 4:
        raise InputError(where, f"layer {layer!r}", f"gives {len(shape)}-D output {shape}",
                         "ferjax explains (N, C, h, w) maps and (N, tokens, C) token layers")
    state, parts = {}, []
    for part in (features_gm, head_gm):
        weights, fn = torchax.extract_jax(part)
        state.update(weights)
        parts.append((sorted(weights), fn))
    # integer buffers (BatchNorm's num_batches_tracked) stay constants: gradients and randomisation skip them
    params = {k: jnp.asarray(v) for k, v in state.items() if jnp.issubdtype(jnp.asarray(v).dtype, jnp.floating)}
    consts = {k: jnp.asarray(v) for k, v in state.items() if k not in params}
    (f_keys, f_fn), (h_keys, h_fn) = parts

    def call(fn, keys, p, *xs):
        flat = {**consts, **flatten(p, ".")}
        out = fn({k: flat[k] for k in keys}, xs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)

    def features(p, x):   # NHWC in [0, 1] -> the network's NCHW input -> NHWC maps (and what is carried)
        a, *carry = call(f_fn, f_keys, p, jnp.transpose((x - mean) / std, (0, 3, 1, 2)))
        if tokens is None:
            maps = jnp.transpose(a, (0, 2, 3, 1))
        else:
            maps, prefix = tokens.split(a, hw)
            carry = [prefix, *carry]
        return Cut(maps, tuple(carry)) if carry else maps

    def head(p, out):
        maps, carry = maps_of(out), list(out.carry) if isinstance(out, Cut) else []
        a = jnp.transpose(maps, (0, 3, 1, 2)) if tokens is None else Tokens.merge(maps, carry.pop(0))
        return call(h_fn, h_keys, p, a, *carry)[0]

    spec = {"source": "torch", "layer": name, "size": hw[0] if hw[0] == hw[1] else list(hw),
            "channels": int(channels), "num_outputs": num_outputs,
            "labels": checked_labels(labels, num_outputs, where),
            "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist(),
            "head_params": sorted({k.split(".")[0] for k in h_keys if k in params}),
            "carry": carried + (tokens is not None), "tokens": None if tokens is None else
            {"grid": list(tokens.grid), "prefix": tokens.prefix},
            "logits": f"before the final {dropped} (left out)" if dropped else "the model's output"}
    return Network(features, Head(head), nest(params, "."), spec)


def load(path, layer: str, *, size, channels: int, labels=None, mean=0.0, std=1.0, model=None, model_kwargs=None,
         allow_pickle=False, grid=None) -> Network:
    """The network in ``path``: a ``state_dict`` checkpoint of ``model`` (``"package.module:Class"``, built with
    ``model_kwargs``), or with ``allow_pickle`` a module saved whole (its class must be importable)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "file not found")
    torch, _ = _modules(path)
    if model:
        module = checkpoints.load_state_dict(torch, path, model, model_kwargs)
    else:
        module = checkpoints.load_module(torch, path, allow_pickle)
    net = from_module(module, layer, size=size, channels=channels, labels=labels, mean=mean, std=std, grid=grid,
                      where=str(path))
    spec = {**net.spec, "file": str(path), "model": model, "model_kwargs": model_kwargs or {}}
    return Network(net.features, net.head, net.params, spec)
