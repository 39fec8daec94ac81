"""One study over several processes (hosts), with JAX's own distributed runtime.

ferjax runs multi-host the way JAX does (``jax.distributed``): the same
command runs once per host, every process joins one job, and the 1-D
``data`` mesh of :mod:`ferjax.plumbing.devices` then spans the devices of all
processes (``jax.devices()`` is global, ordered by process). A jitted
function of arrays sharded over that mesh is one SPMD program; XLA's
collectives (gloo on CPUs, NCCL on GPUs) carry the gradient sums.

* **Joining.** :func:`initialize` takes the coordinator's ``host:port``,
  the process count and this process's index from options (``--coordinator``,
  ``--num-processes``, ``--process-id``, or the environment variables
  ``FERJAX_COORDINATOR``, ``FERJAX_NUM_PROCESSES``, ``FERJAX_PROCESS_ID`` that
  ``ferjax launch`` sets), or lets JAX read them from the cluster (SLURM's
  ``srun``, Open MPI, or ``FERJAX_DISTRIBUTED=auto`` for Kubernetes and TPU
  pods). Without either it is a plain one-process run.
* **Data.** A global array of N rows is split into equal contiguous blocks,
  one per device; each process builds its blocks from its own rows only
  (:func:`rows`, then ``jax.make_array_from_process_local_data``). N is
  padded to a multiple of the device count with copies of the last row.
* **Results** come back to every process with :func:`to_host`; exactly one
  process (:func:`is_writer`) writes each output file, atomically, and
  :func:`barrier` makes the others wait for it.
* **Failures.** The runtime's timeouts are set (``--timeout``): a process
  that never starts or stops answering makes the others stop with an error
  within that time instead of hanging. An error in one process exits it at
  once (:func:`exit_on_error`), which breaks its peers' next collective, so
  they stop too, and ``ferjax launch`` stops the rest and names the process
  that failed.
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ferjax.plumbing import devices
from ferjax.plumbing.errors import InputError

ENV = {"coordinator": "FERJAX_COORDINATOR", "num_processes": "FERJAX_NUM_PROCESSES",
       "process_id": "FERJAX_PROCESS_ID"}
_SLURM = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


def _cluster():
    """The cluster JAX can detect by itself, if this is a multi-process job of one."""
    env = os.environ
    if os.environ.get("FERJAX_DISTRIBUTED", "").lower() == "auto":
        return "auto"
    if all(k in env for k in _SLURM) and int(env["SLURM_NTASKS"]) > 1:
        return "SLURM"
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "Open MPI"
    return None


def initialize(coordinator=None, num_processes=None, process_id=None, *, timeout: int = 300) -> bool:
    """Join the multi-process job if there is one; True if this run is one of several processes.

    ``timeout`` (seconds) bounds the wait for all processes to start and for a
    silent process to be declared dead (heartbeat), and the wait of the first
    process to finish for the others at exit.
    """
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    given = {k: (v if v is not None else os.environ.get(ENV[k])) for k, v in given.items()}
    waits = dict(initialization_timeout=int(timeout), heartbeat_timeout_seconds=max(10, int(timeout) // 3),
                 shutdown_timeout_seconds=int(timeout))
    if all(v in (None, "") for v in given.values()):
        if _cluster() is None:
            return False
        devices.one_per_process()
        jax.distributed.initialize(**waits)
    else:
        missing = [k for k, v in given.items() if v in (None, "")]
        if missing:
            raise InputError(f"--{missing[0].replace('_', '-')}", None, "is missing",
                             "give --coordinator, --num-processes and --process-id together")
        try:
            count, index = int(given["num_processes"]), int(given["process_id"])
        except ValueError:
            raise InputError("--num-processes", None, "--num-processes and --process-id must be integers") from None
        if not 0 <= index < count:
            raise InputError("--process-id", None, f"{index} is not in 0..{count - 1}")
        if count == 1:
            return False
        devices.one_per_process()
        jax.distributed.initialize(str(given["coordinator"]), count, index,
                                   cluster_detection_method="deactivate", **waits)
    return jax.process_count() > 1


def exit_on_error(code: int, message: str | None = None):
    """Leave a multi-process run at once with ``code``, skipping the exit barrier that would wait for peers.

    An ordinary exit waits at JAX's shutdown barrier for every other process,
    which a process stuck in a collective never reaches; exiting the process
    closes its connections, so the peers' collectives fail at once instead.
    """
    if message:
        print(f"error: process {jax.process_index()} of {jax.process_count()}: {message}", file=sys.stderr)
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)


def is_writer() -> bool:
    """True in the one process that writes the outputs (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def padded(n: int, mesh) -> int:
    """N rows padded up to a multiple of the mesh's device count."""
    return n + (-n % mesh.size)


def padded_rows(n: int, mesh) -> np.ndarray:
    """(N',) the rows of N that fill the padded array: ``0..N-1``, then N - 1 repeated (per-row data such as
    targets, padded as the images are)."""
    return np.minimum(np.arange(padded(n, mesh)), n - 1)


def rows(n: int, mesh) -> np.ndarray:
    """The rows of an N-row global array (padded: :func:`padded_rows`) that this process supplies, in order.

    With one process: all of :func:`padded_rows`.
    """
    full = padded_rows(n, mesh)
    spans = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0])).addressable_devices_indices_map(full.shape)
    return np.concatenate([full[s[0]] for s in sorted(spans.values(), key=lambda s: s[0].start)])


def global_rows(mesh, local: np.ndarray, n: int):
    """The global (N', ...) array, split by rows over ``mesh``, from this process's rows ``local``
    (``local = full[rows(n, mesh)]``)."""
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    return jax.make_array_from_process_local_data(sharding, np.asarray(local), (padded(n, mesh), *local.shape[1:]))


def to_host(x) -> np.ndarray:
    """A (possibly process-spanning) array as a full NumPy array in every process."""
    if getattr(x, "is_fully_addressable", True) or x.is_fully_replicated:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def per_process(value: int) -> list[int]:
    """``value`` of every process, in process order, in every process (a collective: all must call it)."""
    if jax.process_count() == 1:
        return [int(value)]
    from jax.experimental import multihost_utils

    return [int(v) for v in np.asarray(multihost_utils.process_allgather(np.array([value]))).ravel()]
