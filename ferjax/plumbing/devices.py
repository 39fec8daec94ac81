"""The devices a batch of independent images is split over, and one CPU device per core by default.

Attribution maps are computed image by image, so a batch parallelises
without communication: the images (and their per-image targets) are split
along the leading axis over a 1-D mesh, the parameters are replicated. One
code path serves 1 CPU device, several CPU devices and GPUs.

**Every core by default.** XLA:CPU runs each device's program on about one
core: the small convolutions of a 64-px face network are not split across
threads. Splitting a batch over N CPU devices is how a program uses N cores,
and on a compute-bound network it made Extremal Perturbation ~1.8x faster on
2 cores. So ``import ferjax`` calls :func:`use_all_cores`, which sets
``jax_num_cpu_devices`` to the cores this process may run on, but only when
nothing chose a count and JAX has not started:

* a host program that already ran JAX keeps its devices (JAX refuses the
  change once its backends are up; the refusal is caught);
* ``XLA_FLAGS=--xla_force_host_platform_device_count=N``,
  ``JAX_NUM_CPU_DEVICES`` or ``jax.config.update("jax_num_cpu_devices", N)``
  win; ``FERJAX_CPU_DEVICES=N`` (the ``ferjax --cpu-devices`` variable) gives
  N, and ``FERJAX_CPU_DEVICES=1`` opts out;
* with ``JAX_PLATFORMS`` excluding cpu nothing is set; on a GPU host the
  setting sizes only the CPU backend, and ``jax.devices()`` stays the GPUs;
* a multi-process job (:mod:`ferjax.plumbing.distributed`) goes back to one
  CPU device per process unless a count was chosen: its processes already
  share the cores.

Results: an image's attribution maps do not depend on the device count.
Training does (the gradient's sum has one term per device), so the
pipeline's ``params.yaml`` pins ``cpu_devices`` for the stages that split
batches, and with an automatic count training uses the most devices that
divide its batch (:func:`data_mesh`'s ``divides``), so any core count works.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["data_mesh", "split_batch", "use_all_cores", "set_cpu_devices", "automatic"]

_automatic = False   # True while the CPU device count is the one use_all_cores chose


def cores() -> int:
    """The cores this process may run on (``sched_getaffinity`` honours taskset and cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # macOS, Windows
        return max(1, os.cpu_count() or 1)


def use_all_cores() -> str:
    """One CPU device per core, unless a count was chosen or JAX has started (module docstring); what it did."""
    global _automatic
    chosen = os.environ.get("FERJAX_CPU_DEVICES", "")
    if chosen.isdigit() and int(chosen) >= 1:
        return set_cpu_devices(int(chosen), strict=False)
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return "left alone: XLA_FLAGS sets the CPU device count"
    if jax.config.jax_num_cpu_devices != -1:
        return f"left alone: jax_num_cpu_devices is {jax.config.jax_num_cpu_devices}"
    platforms = (jax.config.jax_platforms or "").lower()
    if platforms and "cpu" not in platforms.split(","):
        return f"left alone: JAX_PLATFORMS={platforms}"
    done = set_cpu_devices(cores(), strict=False)
    _automatic = done.startswith("set")
    return done


def set_cpu_devices(n: int, *, strict: bool = True) -> str:
    """Split the CPU into ``n`` XLA devices (a chosen count). Before JAX starts only: RuntimeError after,
    or with ``strict=False`` a note that it was left alone."""
    global _automatic
    try:
        jax.config.update("jax_num_cpu_devices", int(n))
    except RuntimeError:
        if strict:
            raise
        return "left alone: JAX had already started"
    _automatic = False
    return f"set jax_num_cpu_devices={n}"


def one_per_process() -> None:
    """Before joining a multi-process job: JAX's one CPU device per process, unless a count was chosen."""
    if _automatic:
        set_cpu_devices(1, strict=False)


def automatic() -> bool:
    """True if the CPU device count is :func:`use_all_cores`'s own choice, not one a user made."""
    return _automatic


def data_mesh(mesh=None, *, divides: int | None = None) -> Mesh:
    """``mesh``, or a 1-D mesh (axis ``"data"``) over all visible devices.

    With ``divides`` and an automatic device count, the mesh takes the most
    devices that divide it (training's batch): a 6-core machine trains a
    batch of 32 on 2 devices rather than refusing it.
    """
    if mesh is not None:
        return mesh
    devices = jax.devices()
    if divides and _automatic and jax.process_count() == 1:
        devices = devices[:max(k for k in range(1, len(devices) + 1) if divides % k == 0)]
    return Mesh(np.array(devices), ("data",))


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
