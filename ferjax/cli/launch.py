"""Running a stage over several processes: the multi-host options, and `ferjax launch` for one machine.

On a cluster the scheduler starts one process per host, or per GPU
(``srun``, a Kubernetes Indexed Job, a TPU pod), and :mod:`ferjax.plumbing.distributed`
reads the job from its environment. On one machine, or on hosts without a scheduler,
``ferjax launch`` (here) or one command per host with ``--process-id`` starts
them.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time

import click

from ferjax.plumbing.errors import InputError

MULTIHOST_HELP = """
    \b
    Several hosts (JAX's distributed runtime): run the same command once per
    process with --coordinator HOST:PORT (process 0's address), --num-processes
    and --process-id; under SLURM's srun (or Open MPI) these come from the
    environment by themselves. The devices of all processes form one mesh;
    each process reads only its share of the images; process 0 writes the
    outputs (to a shared folder) and the others wait for it. On one machine
    `ferjax launch -n N -- COMMAND` starts the N processes.
"""


def multihost(fn):
    """Add the multi-host options to a command, join the job before it runs, and end every process together."""
    @click.option("--coordinator", default=None, envvar="FERJAX_COORDINATOR", show_envvar=True,
                  help="Multi-host: HOST:PORT of process 0's coordinator (any free port).")
    @click.option("--num-processes", type=click.IntRange(1), default=None, envvar="FERJAX_NUM_PROCESSES",
                  show_envvar=True, help="Multi-host: how many processes the job has.")
    @click.option("--process-id", type=click.IntRange(0), default=None, envvar="FERJAX_PROCESS_ID",
                  show_envvar=True, help="Multi-host: this process's index, 0..NUM_PROCESSES-1.")
    @click.option("--timeout", "cluster_timeout", type=click.IntRange(10), default=300, show_default=True,
                  help="Multi-host: seconds to wait for every process to start, and for a silent one before "
                       "the job stops with an error.")
    @functools.wraps(fn)
    def wrapper(*args, coordinator, num_processes, process_id, cluster_timeout, **kwargs):
        from ferjax.plumbing import distributed

        try:
            several = distributed.initialize(coordinator, num_processes, process_id, timeout=cluster_timeout)
        except InputError as err:
            click.echo(f"error: {err.line()}", err=True)
            sys.exit(2)
        if not several:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
            distributed.barrier(f"ferjax {fn.__name__} done")   # the writer has finished before anyone exits
            return result
        except SystemExit as stop:
            distributed.exit_on_error(stop.code if isinstance(stop.code, int) else 1)
        except BaseException as err:   # noqa: BLE001 - any error must end this process at once (module docstring)
            distributed.exit_on_error(1, _describe(err))

    wrapper.__doc__ = (fn.__doc__ or "").rstrip() + "\n" + MULTIHOST_HELP
    return wrapper


def _describe(err) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "gloo" in text.lower() or "connection closed" in text.lower():
        return f"another process of the job stopped (see its log): {text}"
    return f"{type(err).__name__}: {text}"


def free_port() -> int:
    """A TCP port free on this machine now (for the coordinator)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@click.command("launch", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-n", "--processes", type=click.IntRange(1), required=True, help="How many processes to start.")
@click.option("--devices-per-process", type=click.IntRange(1), default=None,
              help="CPU only: XLA devices per process (sets FERJAX_CPU_DEVICES).")
@click.option("--timeout", "wall", type=click.IntRange(1), default=None,
              help="Stop every process after this many seconds (a guard against a hung collective).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def launch(processes, devices_per_process, wall, command):
    """Run COMMAND as N processes of one JAX job on this machine.

    \b
    Each process gets FERJAX_COORDINATOR (127.0.0.1 and a free port),
    FERJAX_NUM_PROCESSES and FERJAX_PROCESS_ID, which the multi-host options of
    `ferjax train` and `ferjax attribute` read; DVC's stages pass them on:
      ferjax launch -n 2 -- ferjax attribute --network work/network ...
      ferjax launch -n 2 -- python stages/attribute.py
    If one process fails, the others are stopped and the launcher exits with
    its status, naming it. On several hosts use your scheduler instead (srun
    starts one process per task and ferjax reads SLURM's environment), or run
    the command on each host with --coordinator, --num-processes and
    --process-id.
    """
    port = free_port()
    children = []
    for index in range(processes):
        env = dict(os.environ, FERJAX_COORDINATOR=f"127.0.0.1:{port}", FERJAX_NUM_PROCESSES=str(processes),
                   FERJAX_PROCESS_ID=str(index))
        if devices_per_process:
            env["FERJAX_CPU_DEVICES"] = str(devices_per_process)
        try:
            children.append(subprocess.Popen(list(command), env=env))
        except OSError as err:
            _stop(children)
            raise click.ClickException(f"cannot start {command[0]!r}: {err}") from None
    start = time.monotonic()
    # until all have exited, or one has failed
    while any(c.poll() is None for c in children) and all(c.poll() in (None, 0) for c in children):
        if wall and time.monotonic() - start > wall:
            _stop(children)
            click.echo(f"error: the {processes} processes ran past --timeout {wall} s; stopped them", err=True)
            sys.exit(124)
        time.sleep(0.05)
    failed = next((i for i, c in enumerate(children) if c.poll() not in (None, 0)), None)
    if failed is not None:
        code = children[failed].returncode
        _stop(children)
        reason = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        click.echo(f"error: process {failed} of {processes} {reason}; stopped the others", err=True)
        sys.exit(code if code > 0 else 1)


def _stop(children, grace: float = 5.0):
    for c in children:
        if c.poll() is None:
            c.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for c in children:
        try:
            c.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.kill()
            c.wait()
