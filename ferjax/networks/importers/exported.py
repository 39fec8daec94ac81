"""ferjax's own format for an imported network: two exported JAX functions and their parameters.

A folder holding::

    model.json          the network's spec (ferjax.networks.interface.Network.spec), "source": "exported"
    params.npz          the parameters, nested names joined by '/'
    features.jaxexport  features(params, images) -> maps, serialised by jax.export
    head.jaxexport      head(params, maps) -> logits

Both functions are serialised with their first-order VJP (``vjp_order=1``:
GradCAM and Extremal Perturbation need one gradient) and a symbolic batch
size, after :func:`ferjax.networks.rewrite.fast_gradients` has given their
convolutions ferjax's gradient rules. Each is traced on one example and
vmapped over the batch, so that a converter which bakes the traced batch
size into its shapes still exports a function of any batch. Loading needs neither Keras nor
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
from ferjax.networks.interface import Head, Network
from ferjax.plumbing import files
from ferjax.plumbing.errors import InputError

FILES = ("model.json", "params.npz", "features.jaxexport", "head.jaxexport")


def export(net: Network):
    """``(features, head)`` of ``net`` as serialised bytes (symbolic batch, first-order VJP).

    Each function is exported as traced with a symbolic batch size; if that
    fails or disagrees with the original on batches of 1 and 3 (a converter
    can bake the traced batch size into a reshape: torchax's ``flatten`` does),
    it is traced on one example and vmapped over the batch instead. ValueError
    if neither reproduces the original.
    """
    from jax import export as jexport

    spec = net.spec
    (batch,) = jexport.symbolic_shape("b")
    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), jnp.asarray(a).dtype), net.params)
    probe = jax.random.uniform(jax.random.PRNGKey(0), (3, spec["size"], spec["size"], spec["channels"]))
    maps = net.features(net.params, probe)
    blobs = []
    for name, fn, x in (("features", net.features, probe), ("head", net.head, maps)):
        arg = jax.ShapeDtypeStruct((batch, *x.shape[1:]), jnp.float32)
        per_example = lambda p, xs, fn=fn: jax.vmap(lambda xi: fn(p, xi[None])[0])(xs)  # noqa: E731
        want = np.asarray(fn(net.params, x))
        for candidate in (fn, per_example):
            try:
                blob = jexport.export(jax.jit(rewrite.fast_gradients(candidate)))(params, arg).serialize(vjp_order=1)
                call = jexport.deserialize(bytearray(blob)).call
                ok = all(np.allclose(np.asarray(call(net.params, x[:k])), want[:k], rtol=1e-4, atol=1e-5)
                         for k in (1, 3))
            except Exception:   # noqa: BLE001 - any failure of this way of exporting: try the next
                ok = False
            if ok:
                blobs.append(blob)
                break
        else:
            raise ValueError(f"the network's {name} function cannot be exported with a free batch size")
    return tuple(blobs)


def save(folder, net: Network) -> None:
    """Write ``net`` in the exported format into ``folder`` (atomically: no partial folder on failure)."""
    features, head = export(net)
    with files.atomic_path(folder, directory=True) as tmp:
        files.write_json(tmp / "model.json", {**net.spec, "source_format": net.spec.get("source"),
                                               "source": "exported"})
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
    return Network(lambda p, x: features.call(p, x), Head(lambda p, a: head.call(p, a)), params, spec)
