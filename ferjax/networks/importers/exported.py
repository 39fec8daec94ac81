"""ferjax's own format for an imported network: two exported JAX functions and their parameters.

A folder holding::

    model.json          the network's spec (ferjax.networks.interface.Network.spec), "source": "exported"
    params.npz          the parameters, nested names joined by '/'
    features.jaxexport  features(params, images) -> maps, serialised by jax.export
    head.jaxexport      head(params, maps) -> logits

Both functions are serialised with their first-order VJP (``vjp_order=1``:
GradCAM and Extremal Perturbation need one gradient) and a symbolic batch
size, after :func:`ferjax.networks.rewrite.fast_gradients` has given their
convolutions ferjax's gradient rules. If tracing with a symbolic batch fails,
each is traced on one example and vmapped over the batch, so that a
converter which bakes the traced batch size into its shapes still exports a
function of any batch. Values carried across the cut
(:class:`ferjax.networks.interface.Cut`) travel as further outputs of
``features`` and inputs of ``head``.

**Portable.** The functions are lowered for CPU and CUDA together
(``jax.export``'s ``platforms``; ``model.json`` lists them), so a network
imported on a laptop's CPU is explained on a cluster's GPUs; platform-specific
kernels (LAPACK on CPU, cuSOLVER on GPU) are embedded for each. A function
that cannot be lowered for CUDA (a CPU-only custom call) is exported for the
platform it runs on, and the list says so. Loading needs neither Keras nor
PyTorch, only JAX, and takes a fraction of a second where Keras's own
loader compiles every layer's initialiser first.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.networks import rewrite
from ferjax.networks.importers import flatten, nest
from ferjax.networks.interface import Cut, Head, Network, input_hw
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError

FILES = ("model.json", "params.npz", "features.jaxexport", "head.jaxexport")


PLATFORMS = ("cpu", "cuda")


def _flat(net: Network):
    """``features`` and ``head`` with a Cut as a tuple ``(maps, *carry)``, and the number carried."""
    def features(p, x):
        out = net.features(p, x)
        return (out.maps, *out.carry) if isinstance(out, Cut) else (out,)

    def head(p, maps, *carry):
        return net.head(p, Cut(maps, carry) if carry else maps)
    return features, head


def export(net: Network):
    """``(features, head, platforms)``: the two functions as serialised bytes (symbolic batch, first-order
    VJP), and the platforms they were lowered for.

    Each function is exported as traced with a symbolic batch size; if that
    fails or disagrees with the original on batches of 1 and 3 (a converter
    can bake the traced batch size into a reshape: torchax's ``flatten`` does),
    it is traced on one example and vmapped over the batch instead. ValueError
    if neither reproduces the original.
    """
    from jax import export as jexport

    (batch,) = jexport.symbolic_shape("b")
    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.asarray(a).dtype), net.params)
    probe = jax.random.uniform(jax.random.PRNGKey(0), (3, *input_hw(net.spec), net.spec["channels"]))
    features, head = _flat(net)
    maps = features(net.params, probe)
    blobs, platforms = [], None
    for name, fn, xs in (("features", features, (probe,)), ("head", head, maps)):
        args = [jax.ShapeDtypeStruct((batch, *x.shape[1:]), x.dtype) for x in xs]
        per_example = lambda p, *b, fn=fn: jax.vmap(lambda *e: _first(fn(p, *(v[None] for v in e))))(*b)  # noqa: E731
        want = jax.tree.map(np.asarray, fn(net.params, *xs))
        for candidate in (fn, per_example):
            for targets in (PLATFORMS, None):   # None: the platform it runs on
                try:
                    exp = jexport.export(jax.jit(rewrite.fast_gradients(candidate)), platforms=targets)(params, *args)
                    blob = exp.serialize(vjp_order=1)
                    call = jexport.deserialize(bytearray(blob)).call
                    ok = all(np.allclose(np.asarray(g), np.asarray(w)[:k], rtol=1e-4, atol=1e-5)
                             for k in (1, 3) for g, w in zip(jax.tree.leaves(call(net.params, *(x[:k] for x in xs))),
                                                             jax.tree.leaves(want)))
                except Exception:   # noqa: BLE001 - any failure of this way of exporting: try the next
                    ok = False
                if ok:
                    break
            if ok:
                blobs.append(blob)
                platforms = sorted(set(platforms or exp.platforms) & set(exp.platforms))
                break
        else:
            raise ValueError(f"the network's {name} function cannot be exported with a free batch size")
    return (*blobs, platforms)


def _first(out):
    """One example's outputs without their batch axis."""
    return jax.tree.map(lambda v: v[0], out)


def save(folder, net: Network) -> None:
    """Write ``net`` in the exported format into ``folder`` (atomically: no partial folder on failure)."""
    features, head, platforms = export(net)
    with files.atomic_path(folder, directory=True) as tmp:
        files.write_json(tmp / "model.json", {**net.spec, "source_format": net.spec.get("source"),
                                               "source": "exported", "platforms": platforms})
        files.save_npz(tmp / "params.npz", **{k: np.asarray(v) for k, v in flatten(net.params).items()})
        (tmp / "features.jaxexport").write_bytes(features)
        (tmp / "head.jaxexport").write_bytes(head)


def load(folder) -> Network:
    """The network saved by :func:`save`."""
    from jax import export as jexport

    folder = Path(folder)
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise InputError(folder / missing[0], None, "file not found",
                         "an exported network folder holds " + ", ".join(FILES))
    try:
        spec = json.loads((folder / "model.json").read_text())
        with np.load(folder / "params.npz") as z:
            params = nest({k: z[k] for k in z.files})
        features, head = (jexport.deserialize(bytearray((folder / f"{name}.jaxexport").read_bytes()))
                          for name in ("features", "head"))
    except (OSError, ValueError, KeyError) as err:
        raise InputError(folder, None, f"cannot read the exported network ({err})",
                         "re-export it with ferjax's importers") from None

    def features_fn(p, x):
        out = features.call(p, x)   # (maps, *carry); a bare array from exports before the carry existed
        if not isinstance(out, (tuple, list)):
            return out
        return Cut(out[0], tuple(out[1:])) if len(out) > 1 else out[0]

    def head_fn(p, out):
        return head.call(p, *((out.maps, *out.carry) if isinstance(out, Cut) else (out,)))

    return Network(features_fn, Head(head_fn), params, spec)
