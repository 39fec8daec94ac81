"""Splitting a batch of independent images over the visible devices.

Attribution maps are computed image by image, so a batch parallelises
without communication: the images (and their per-image targets) are split
along the leading axis over a 1-D mesh, the parameters are replicated. One
code path serves 1 CPU device, several CPU devices
(``ferjax --cpu-devices N``, or
``XLA_FLAGS=--xla_force_host_platform_device_count=N``) and GPUs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["data_mesh", "split_batch"]


def data_mesh(mesh=None) -> Mesh:
    """``mesh``, or a 1-D mesh (axis ``"data"``) over all visible devices."""
    return mesh if mesh is not None else Mesh(np.array(jax.devices()), ("data",))


def split_batch(mesh, params, *batch):
    """Place ``params`` replicated and each ``(N, ...)`` array of ``batch`` split over ``mesh``.

    N is padded up to a multiple of the device count with copies of the last
    row (their results are to be dropped: keep the first N rows). Returns
    ``(n, params, *batch)`` with n = N, the unpadded size.
    """
    mesh = data_mesh(mesh)
    arrays = [jnp.asarray(a) for a in batch]
    n = arrays[0].shape[0]
    if any(a.shape[:1] != (n,) for a in arrays):
        raise ValueError(f"batch arrays must share their leading size; got {[a.shape for a in arrays]}")
    pad = -n % mesh.size
    if pad:
        arrays = [jnp.concatenate([a, jnp.repeat(a[-1:], pad, 0)]) for a in arrays]
    split, repl = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])), NamedSharding(mesh, PartitionSpec())
    return (n, jax.device_put(params, repl), *jax.device_put(arrays, split))
